// Agent: one loaded config, its modules and the Engine, as both sanagentd and
// `sanctl plan/apply/status` (without a daemon) use them. A config that does
// not validate is never installed: reload() keeps the previous one.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "sanagent/agent/engine.h"

namespace sanagent::agent {

using ModuleFactory = std::function<std::vector<std::unique_ptr<Module>>(const Config&)>;

// The modules of a real machine, in plan order.
std::vector<std::unique_ptr<Module>> default_modules(const Config& config);

struct AgentOptions {
    LoadOptions load;
    std::optional<std::filesystem::path> state_dir;  // overrides [agent] state_dir
    ModuleFactory modules = default_modules;
};

// Load, validate with the schema and every module. Errors land in `diagnostics`.
Config load_and_validate(const AgentOptions& options, Diagnostics& diagnostics);

class Agent {
public:
    explicit Agent(AgentOptions options) : options_(std::move(options)) {}

    // Re-read the config; on success it replaces the current one and the
    // modules are rebuilt. Returns false (diagnostics filled) otherwise.
    bool reload(Diagnostics& diagnostics);
    bool loaded() const { return engine_ != nullptr; }
    const Config& config() const { return config_; }

    std::filesystem::path state_dir() const;
    std::filesystem::path control_socket() const;
    std::chrono::milliseconds interval() const;

    struct PlanResult {
        std::vector<Step> steps;
        std::vector<std::string> errors;
    };
    PlanResult plan();
    // Plan, apply, save ownership. Errors of modules that could not observe make it partial.
    ApplyReport apply(const LogSink& log = {});
    std::vector<ObjectStatus> status();

private:
    AgentOptions options_;
    Config config_;
    std::unique_ptr<Engine> engine_;
};

}  // namespace sanagent::agent
