// sanctl's explicit volume operations: the ones a config edit never does.
//
//   sanctl snapshot create VOLUME NAME    thin snapshot, LV <volume>+<name>
//   sanctl snapshot list [VOLUME]
//   sanctl snapshot delete VOLUME NAME
//   sanctl snapshot rollback VOLUME NAME [--force]
//   sanctl volume delete NAME --yes-destroy-data
//
// `volume delete` only takes a volume that is no longer in the config (else
// the next apply would make it again), takes its LIO target away first (the
// LV is open while exported), removes the LV, and forgets the objects in
// owned.json. Nothing here runs without the explicit flag.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "sanagent/agent/config.h"
#include "sanagent/configfs/tree.h"
#include "sanagent/lvm/report.h"
#include "sanagent/process.h"

namespace sanagent::agent {

// The volume's content back to `snapshot`'s, the snapshot kept (see
// docs/volumes.md for the steps and their ways back). Refused while
// initiators are logged in to the volume's target unless `force`. What it did
// goes to `out`; an Error says what failed and in what state it left things.
Status rollback_volume(CommandRunner& runner, configfs::ConfigfsTree& tree, const Config& config,
                       const std::string& vg, const std::string& volume, const lvm::LogicalVolumeState& snapshot,
                       bool force, std::ostream& out);

int run_snapshot_command(const std::vector<std::string>& args);
int run_volume_command(const std::vector<std::string>& args);

}  // namespace sanagent::agent
