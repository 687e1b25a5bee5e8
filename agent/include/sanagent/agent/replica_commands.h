// sanctl replica ...: talks to sanrepd's control socket (docs/replicator.md).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sanagent/result.h"

namespace sanagent::agent {

// args follow "replica". Exit: 0 ok (verify: no mismatch), 1 error, 2 usage,
// 4 verify found mismatched ranges.
int run_replica_command(const std::vector<std::string>& args);

// The status of every sanrepd volume with a control socket in `control_dir`
// (a JSON array; a socket that does not answer gives {"volume", "error"}).
// Empty when the directory is missing: a node without sanrepd.
Result<nlohmann::json> replica_statuses(const std::string& control_dir);
// One line per entry of replica_statuses(), as `sanctl replica status` prints.
std::string replica_status_lines(const nlohmann::json& statuses);

}  // namespace sanagent::agent
