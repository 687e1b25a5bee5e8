// The JSON documents the control socket carries for status, plan and apply,
// and their human text. sanctl prints the same text whether the answer came
// from the daemon or from a direct run, so both paths go through JSON.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sanagent/agent/agent.h"

namespace sanagent::agent {

nlohmann::json plan_json(const Agent::PlanResult& plan);
std::string plan_text(const nlohmann::json& plan);
std::string apply_text(const nlohmann::json& report);
std::string status_text(const nlohmann::json& status);

}  // namespace sanagent::agent
