#include "sanagent/agent/engine.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

namespace sanagent::agent {

std::string_view health_name(Health health) {
    switch (health) {
        case Health::ok:
            return "ok";
        case Health::degraded:
            return "degraded";
        case Health::failed:
            return "failed";
        case Health::orphaned:
            return "orphaned";
        case Health::foreign:
            return "foreign";
    }
    return "?";
}

std::string_view outcome_name(Outcome outcome) {
    switch (outcome) {
        case Outcome::ok:
            return "ok";
        case Outcome::partial:
            return "partial";
        case Outcome::failed:
            return "failed";
    }
    return "?";
}

std::string_view state_name(StepRecord::State state) {
    switch (state) {
        case StepRecord::State::done:
            return "done";
        case StepRecord::State::failed:
            return "failed";
        case StepRecord::State::undone:
            return "undone";
        case StepRecord::State::undo_failed:
            return "undo failed";
        case StepRecord::State::skipped:
            return "skipped";
    }
    return "?";
}

nlohmann::json to_json(const Step& step) {
    return {{"object", step.object},
            {"action", step.action},
            {"module", step.module},
            {"undoable", static_cast<bool>(step.undo)}};
}

std::string to_text(const std::vector<Step>& plan) {
    if (plan.empty()) return "no changes: the machine matches the config\n";
    std::ostringstream out;
    std::size_t i = 0;
    for (const auto& step : plan) out << ++i << ". " << step.object << ": " << step.action << "\n";
    return out.str();
}

void Engine::validate(const Config& config, Diagnostics& diagnostics) const {
    for (const auto& module : modules_) module->validate(config, diagnostics);
}

std::vector<Step> Engine::plan(const Config& config, const Ownership& owned, std::vector<std::string>& errors) {
    std::vector<Step> steps;
    for (const auto& module : modules_) {
        if (auto observed = module->observe(); !observed) {
            errors.push_back(std::string(module->name()) + ": observing: " + observed.error().message);
            continue;
        }
        for (auto& step : module->plan(config, owned)) {
            step.module = std::string(module->name());
            steps.push_back(std::move(step));
        }
    }
    return steps;
}

ApplyReport Engine::apply(std::vector<Step> steps, Ownership& owned, const LogSink& log) {
    ApplyReport report;
    // Done steps per object, for undo; objects that failed skip their later steps.
    std::map<std::string, std::vector<const Step*>> done;
    std::set<std::string> failed;
    std::set<std::string> touched;
    auto say = [&](const std::string& object, const std::string& step, const std::string& message) {
        if (log) log(object, step, message);
    };
    for (const auto& step : steps) {
        touched.insert(step.object);
        if (failed.count(step.object)) {
            report.records.push_back({step.object, step.action, StepRecord::State::skipped, {}});
            continue;
        }
        Status result = step.apply ? step.apply() : Status(Error{EINVAL, "step has nothing to apply"});
        if (result) {
            say(step.object, step.action, "done");
            report.records.push_back({step.object, step.action, StepRecord::State::done, {}});
            done[step.object].push_back(&step);
            continue;
        }
        say(step.object, step.action, "failed: " + result.error().message);
        report.records.push_back({step.object, step.action, StepRecord::State::failed, result.error().message});
        failed.insert(step.object);
        auto& undo_list = done[step.object];
        for (auto it = undo_list.rbegin(); it != undo_list.rend(); ++it) {
            const Step& previous = **it;
            if (!previous.undo) {
                report.records.push_back(
                    {previous.object, "undo: " + previous.action, StepRecord::State::undo_failed, "cannot be undone"});
                continue;
            }
            Status undone = previous.undo();
            say(previous.object, "undo: " + previous.action, undone ? "done" : "failed: " + undone.error().message);
            report.records.push_back({previous.object, "undo: " + previous.action,
                                      undone ? StepRecord::State::undone : StepRecord::State::undo_failed,
                                      undone ? std::string{} : undone.error().message});
        }
        undo_list.clear();
    }
    for (const auto& [object, list] : done) {
        if (failed.count(object)) continue;
        report.changes += list.size();
        for (const auto* step : list)
            if (step->claims) owned.claim(object, step->module);
    }
    if (failed.empty())
        report.outcome = Outcome::ok;
    else
        report.outcome = failed.size() == touched.size() ? Outcome::failed : Outcome::partial;
    return report;
}

std::vector<ObjectStatus> Engine::status(const Config& config, const Ownership& owned) {
    std::vector<ObjectStatus> all;
    std::set<std::string> seen;
    for (const auto& module : modules_) {
        if (auto observed = module->observe(); !observed) {
            for (const auto& object : module->desired_objects(config)) {
                all.push_back({object, "(config)", "unknown", Health::failed, observed.error().message});
                seen.insert(object);
            }
            continue;
        }
        for (auto& s : module->status(config, owned)) {
            seen.insert(s.object);
            all.push_back(std::move(s));
        }
    }
    for (const auto& [object, module] : owned.objects())
        if (!seen.count(object))
            all.push_back({object, "(not in config)", "left in place", Health::orphaned,
                           "owned by module " + module + "; remove it by hand or put it back in the config"});
    return all;
}

nlohmann::json to_json(const ApplyReport& report) {
    nlohmann::json steps = nlohmann::json::array();
    for (const auto& r : report.records) {
        nlohmann::json j{{"object", r.object}, {"action", r.action}, {"state", state_name(r.state)}};
        if (!r.error.empty()) j["error"] = r.error;
        steps.push_back(std::move(j));
    }
    return {{"outcome", outcome_name(report.outcome)},
            {"changes", report.changes},
            {"steps", steps},
            {"errors", report.errors}};
}

std::string to_text(const ApplyReport& report) {
    std::ostringstream out;
    for (const auto& r : report.records) {
        out << state_name(r.state) << ": " << r.object << ": " << r.action;
        if (!r.error.empty()) out << ": " << r.error;
        out << "\n";
    }
    for (const auto& e : report.errors) out << "error: " << e << "\n";
    out << outcome_name(report.outcome) << ": " << report.changes << " change(s)\n";
    return out.str();
}

nlohmann::json to_json(const std::vector<ObjectStatus>& status) {
    nlohmann::json objects = nlohmann::json::array();
    for (const auto& s : status) {
        nlohmann::json j{
            {"object", s.object}, {"desired", s.desired}, {"actual", s.actual}, {"health", health_name(s.health)}};
        if (!s.detail.empty()) j["detail"] = s.detail;
        objects.push_back(std::move(j));
    }
    return objects;
}

std::string to_text(const std::vector<ObjectStatus>& status) {
    if (status.empty()) return "no objects\n";
    std::ostringstream out;
    for (const auto& s : status) {
        out << health_name(s.health) << "  " << s.object << "  desired " << s.desired << "  actual " << s.actual;
        if (!s.detail.empty()) out << "  (" << s.detail << ")";
        out << "\n";
    }
    return out.str();
}

}  // namespace sanagent::agent
