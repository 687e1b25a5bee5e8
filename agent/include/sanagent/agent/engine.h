// The Engine: validates the config with every module, observes, plans and
// applies. A failing step stops the steps of its object, is reported with the
// error, and the steps already done to that object in this run are undone (in
// reverse) where they can be; other objects still converge.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sanagent/agent/module.h"

namespace sanagent::agent {

enum class Outcome { ok, partial, failed };
std::string_view outcome_name(Outcome outcome);

struct StepRecord {
    std::string object;
    std::string action;
    enum class State { done, failed, undone, undo_failed, skipped } state = State::done;
    std::string error;
};
std::string_view state_name(StepRecord::State state);

struct ApplyReport {
    Outcome outcome = Outcome::ok;
    std::size_t changes = 0;  // steps applied and kept
    std::vector<StepRecord> records;
    std::vector<std::string> errors;  // modules that could not observe or plan
};
nlohmann::json to_json(const ApplyReport& report);
std::string to_text(const ApplyReport& report);

// A log line with its object and step, for stderr and the journal.
using LogSink = std::function<void(const std::string& object, const std::string& step, const std::string& message)>;

class Engine {
public:
    explicit Engine(std::vector<std::unique_ptr<Module>> modules) : modules_(std::move(modules)) {}

    void validate(const Config& config, Diagnostics& diagnostics) const;
    // Observe with every module and collect their plans in module order.
    // Modules that cannot observe are listed in `errors` and plan nothing.
    std::vector<Step> plan(const Config& config, const Ownership& owned, std::vector<std::string>& errors);
    // Run steps; claims ownership of objects whose steps all succeeded.
    ApplyReport apply(std::vector<Step> steps, Ownership& owned, const LogSink& log = {});
    // Observe and report every desired or owned object; owned objects no
    // module wants any more are orphaned.
    std::vector<ObjectStatus> status(const Config& config, const Ownership& owned);

    const std::vector<std::unique_ptr<Module>>& modules() const { return modules_; }

private:
    std::vector<std::unique_ptr<Module>> modules_;
};

nlohmann::json to_json(const std::vector<ObjectStatus>& status);
std::string to_text(const std::vector<ObjectStatus>& status);

}  // namespace sanagent::agent
