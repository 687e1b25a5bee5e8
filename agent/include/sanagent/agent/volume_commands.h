// sanctl's explicit volume operations: the ones a config edit never does.
//
//   sanctl snapshot create VOLUME NAME    thin snapshot, LV <volume>+<name>
//   sanctl snapshot list [VOLUME]
//   sanctl snapshot delete VOLUME NAME
//   sanctl volume delete NAME --yes-destroy-data
//
// `volume delete` only takes a volume that is no longer in the config (else
// the next apply would make it again), takes its LIO target away first (the
// LV is open while exported), removes the LV, and forgets the objects in
// owned.json. Nothing here runs without the explicit flag.
#pragma once

#include <string>
#include <vector>

namespace sanagent::agent {

int run_snapshot_command(const std::vector<std::string>& args);
int run_volume_command(const std::vector<std::string>& args);

}  // namespace sanagent::agent
