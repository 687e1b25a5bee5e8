// The LIO dbroot module: the directory where the kernel keeps persistent
// reservation (APTPL) and ALUA metadata. The kernel accepts a new dbroot only
// while no device is registered (target_core_configfs.c refuses it with EINVAL
// once target_devices is non-zero) and only an existing directory, so the plan
// creates the directory first and writes dbroot before any backstore exists.
//
// Ownership: the kernel's own defaults (/etc/target, /var/target) may be
// replaced; any other value someone set by hand is foreign until the agent owns
// it (owned.json), and is then reported, not changed.
#pragma once

#include <memory>

#include "sanagent/agent/module.h"
#include "sanagent/configfs/lio.h"

namespace sanagent::agent {

class DbrootModule final : public Module {
public:
    explicit DbrootModule(std::shared_ptr<configfs::ConfigfsTree> tree) : tree_(std::move(tree)) {}

    static constexpr const char* kObject = "dbroot/lio";

    std::string_view name() const override { return "dbroot"; }
    void validate(const Config& config, Diagnostics& diagnostics) const override;
    Status observe() override;
    std::vector<std::string> desired_objects(const Config& config) const override;
    std::vector<Step> plan(const Config& config, const Ownership& owned) override;
    std::vector<ObjectStatus> status(const Config& config, const Ownership& owned) override;

private:
    bool wanted(const Config& config) const;
    std::shared_ptr<configfs::ConfigfsTree> tree_;
    configfs::LioState observed_;
};

}  // namespace sanagent::agent
