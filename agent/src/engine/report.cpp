#include "sanagent/agent/report.h"

#include <sstream>

namespace sanagent::agent {

namespace {
std::string str(const nlohmann::json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string{};
}
}  // namespace

nlohmann::json plan_json(const Agent::PlanResult& plan) {
    nlohmann::json steps = nlohmann::json::array();
    for (const auto& step : plan.steps) steps.push_back(to_json(step));
    return {{"steps", steps}, {"errors", plan.errors}};
}

std::string plan_text(const nlohmann::json& plan) {
    std::ostringstream out;
    const auto& steps = plan.at("steps");
    if (steps.empty()) out << "no changes: the machine matches the config\n";
    std::size_t i = 0;
    for (const auto& step : steps) out << ++i << ". " << str(step, "object") << ": " << str(step, "action") << "\n";
    for (const auto& e : plan.at("errors")) out << "error: " << e.get<std::string>() << "\n";
    return out.str();
}

std::string apply_text(const nlohmann::json& report) {
    std::ostringstream out;
    for (const auto& r : report.at("steps")) {
        out << str(r, "state") << ": " << str(r, "object") << ": " << str(r, "action");
        if (r.contains("error")) out << ": " << str(r, "error");
        out << "\n";
    }
    for (const auto& e : report.at("errors")) out << "error: " << e.get<std::string>() << "\n";
    out << str(report, "outcome") << ": " << report.at("changes").get<std::size_t>() << " change(s)\n";
    return out.str();
}

std::string status_text(const nlohmann::json& status) {
    std::ostringstream out;
    if (status.contains("daemon")) {
        const auto& d = status["daemon"];
        out << "sanagentd " << str(d, "version") << ", config " << str(d, "config_dir") << ", last run "
            << str(d, "last_outcome") << "\n";
    }
    const auto& objects = status.at("objects");
    if (objects.empty()) out << "no objects\n";
    for (const auto& s : objects) {
        out << str(s, "health") << "  " << str(s, "object") << "  desired " << str(s, "desired") << "  actual "
            << str(s, "actual");
        if (s.contains("detail")) out << "  (" << str(s, "detail") << ")";
        out << "\n";
    }
    return out.str();
}

}  // namespace sanagent::agent
