// sanctl replica ...: talks to sanrepd's control socket (docs/replicator.md).
#pragma once

#include <string>
#include <vector>

namespace sanagent::agent {

// args follow "replica". Exit: 0 ok (verify: no mismatch), 1 error, 2 usage,
// 4 verify found mismatched ranges.
int run_replica_command(const std::vector<std::string>& args);

}  // namespace sanagent::agent
