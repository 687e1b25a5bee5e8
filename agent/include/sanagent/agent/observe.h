// What the agent sees of this machine's kernel and tools: the observed state
// every module starts from, gathered in one pass (one netlink dump, one walk of
// the LIO tree, one lvm report each). `sanctl observe` prints it.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sanagent/configfs/lio.h"
#include "sanagent/lvm/report.h"
#include "sanagent/netlink/link.h"
#include "sanagent/process.h"

namespace sanagent::agent {

struct ObserveOptions {
    std::filesystem::path target_root = "/sys/kernel/config/target";
};

struct Observation {
    std::string kernel_release;
    std::vector<netlink::LinkState> links;
    std::string links_error;        // set when the netlink dump failed
    configfs::LioState lio;
    std::vector<lvm::VolumeGroupState> volume_groups;
    std::vector<lvm::LogicalVolumeState> logical_volumes;
    std::string lvm_error;          // set when lvm could not be asked
};

Observation observe_machine(const ObserveOptions& options, CommandRunner& runner);

nlohmann::json to_json(const Observation& observation);
// Human text, in the order an admin checks things: network, target, LVM.
std::string to_text(const Observation& observation);

}  // namespace sanagent::agent
