#include "sanagent/agent/pool_alarms.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "sanagent/agent/lvm_modules.h"
#include "sanagent/fd.h"

namespace sanagent::agent {

namespace fs = std::filesystem;

namespace {

constexpr const char* kStateFile = "pool-alarms.json";

std::string percent_text(double p) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%.1f", p);
    return buf;
}

std::optional<AlarmLevel> level_from(const std::string& text) {
    for (auto l : {AlarmLevel::ok, AlarmLevel::warning, AlarmLevel::critical})
        if (alarm_level_name(l) == text) return l;
    return std::nullopt;
}

}  // namespace

std::string_view alarm_level_name(AlarmLevel level) {
    switch (level) {
        case AlarmLevel::ok:
            return "ok";
        case AlarmLevel::warning:
            return "warning";
        case AlarmLevel::critical:
            return "critical";
    }
    return "?";
}

AlarmLevel level_of(double percent, double warn_at, double critical_at) {
    if (percent >= critical_at) return AlarmLevel::critical;
    if (percent >= warn_at) return AlarmLevel::warning;
    return AlarmLevel::ok;
}

std::string AlarmEvent::message() const {
    if (level == AlarmLevel::ok)
        return "pool " + pool + ": thin pool " + metric + " use back to " + percent_text(percent) + "%, below " +
               percent_text(threshold) + "% (was " + std::string(alarm_level_name(previous)) + ")";
    return "pool " + pool + ": thin pool " + metric + " use " + percent_text(percent) + "% crossed " +
           std::string(alarm_level_name(level)) + " threshold " + percent_text(threshold) + "% (vg " + vg + ")";
}

Result<PoolAlarms> PoolAlarms::load(const fs::path& state_dir) {
    const fs::path file = state_dir / kStateFile;
    PoolAlarms alarms;
    std::ifstream in(file);
    if (!in) return alarms;  // none reported yet
    std::stringstream text;
    text << in.rdbuf();
    auto doc = nlohmann::json::parse(text.str(), nullptr, false);
    if (doc.is_discarded() || !doc.is_object() || !doc.contains("levels") || !doc["levels"].is_object())
        return Error{EINVAL, "reading " + file.string() + ": not a sanagent alarm state file; fix or remove it"};
    for (const auto& [key, value] : doc["levels"].items())
        if (value.is_string())
            if (auto l = level_from(value.get<std::string>())) alarms.levels_[key] = *l;
    return alarms;
}

Status PoolAlarms::save(const fs::path& state_dir) const {
    std::error_code ec;
    fs::create_directories(state_dir, ec);
    if (ec) return Error{ec.value(), "creating " + state_dir.string() + ": " + ec.message()};
    nlohmann::json doc{{"version", 1}, {"levels", nlohmann::json::object()}};
    for (const auto& [key, level] : levels_) doc["levels"][key] = std::string(alarm_level_name(level));
    const std::string text = doc.dump(2) + "\n";
    const fs::path tmp = state_dir / (std::string(kStateFile) + ".tmp");
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd.valid()) return last_errno("creating " + tmp.string());
    if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()) || ::fsync(fd.get()) != 0)
        return last_errno("writing " + tmp.string());
    fd.reset();
    if (::rename(tmp.c_str(), (state_dir / kStateFile).c_str()) != 0) return last_errno("renaming " + tmp.string());
    return {};
}

AlarmLevel PoolAlarms::level(const std::string& pool, const std::string& metric) const {
    auto it = levels_.find(pool + "/" + metric);
    return it == levels_.end() ? AlarmLevel::ok : it->second;
}

std::vector<AlarmEvent> PoolAlarms::update(const std::vector<PoolReading>& readings) {
    std::vector<AlarmEvent> events;
    for (const auto& r : readings) {
        for (const auto& [metric, value] : {std::pair<std::string, double>{"data", r.data_percent},
                                            std::pair<std::string, double>{"metadata", r.metadata_percent}}) {
            const AlarmLevel now = level_of(value, r.warn_at, r.critical_at);
            auto& before = levels_[r.pool + "/" + metric];
            if (now == before) continue;
            AlarmEvent e{r.pool, r.vg, metric, now, before, value,
                         now == AlarmLevel::critical ? r.critical_at : r.warn_at};
            // Falling from critical to warning is a crossing of critical_at.
            if (now == AlarmLevel::warning && before == AlarmLevel::critical) e.threshold = r.critical_at;
            events.push_back(std::move(e));
            before = now;
        }
    }
    return events;
}

std::vector<PoolReading> pool_readings(const Config& config, const std::vector<lvm::LogicalVolumeState>& lvs) {
    std::vector<PoolReading> out;
    if (!is_storage_node(config)) return out;
    for (const auto* pool : config.objects("pool")) {
        auto spec = pool_spec(config, pool->name);
        for (const auto& lv : lvs) {
            if (lv.vg != spec.vg || lv.name != spec.thin_pool || !lv.is_thin_pool()) continue;
            PoolReading r;
            r.pool = pool->name;
            r.vg = spec.vg;
            r.data_percent = lv.data_percent.value_or(0);
            r.metadata_percent = lv.metadata_percent.value_or(0);
            r.warn_at = static_cast<double>(config.get_integer("pool", pool->name, "warn_at"));
            r.critical_at = static_cast<double>(config.get_integer("pool", pool->name, "critical_at"));
            out.push_back(std::move(r));
        }
    }
    return out;
}

std::vector<std::string> alert_command_of(const Config& config, const std::string& pool) {
    auto own = config.get_list("pool", pool, "alert_command");
    if (!own.empty()) return own;
    return config.get_list("agent", "", "alert_command");
}

Status run_alert(CommandRunner& runner, const std::vector<std::string>& argv, const AlarmEvent& event,
                 const std::string& node) {
    Command command(argv, kAlertTimeout);
    command.extra_env = {"SANAGENT_POOL=" + event.pool,
                         "SANAGENT_VG=" + event.vg,
                         "SANAGENT_LEVEL=" + std::string(alarm_level_name(event.level)),
                         "SANAGENT_PREVIOUS_LEVEL=" + std::string(alarm_level_name(event.previous)),
                         "SANAGENT_METRIC=" + event.metric,
                         "SANAGENT_PERCENT=" + percent_text(event.percent),
                         "SANAGENT_THRESHOLD=" + percent_text(event.threshold),
                         "SANAGENT_NODE=" + node,
                         "SANAGENT_MESSAGE=" + event.message()};
    auto r = check_exit(command, runner.run(command));
    if (!r) return r.error().context("alert command for pool " + event.pool);
    return {};
}

std::vector<AlarmEvent> check_pool_alarms(const Config& config, const std::vector<lvm::LogicalVolumeState>& lvs,
                                          const fs::path& state_dir, CommandRunner& runner, const AlarmLog& log) {
    auto readings = pool_readings(config, lvs);
    if (readings.empty()) return {};
    auto alarms = PoolAlarms::load(state_dir);
    if (!alarms) {
        log(true, alarms.error().message, "pool/*");
        return {};
    }
    auto events = alarms->update(readings);
    if (events.empty()) return events;
    // Saved before the commands run: a command that hangs or crashes the
    // pass must not make the next pass report the same crossing again.
    if (auto st = alarms->save(state_dir); !st) log(true, st.error().message, "pool/*");
    const std::string node = config.get_string("node", "", "name");
    for (const auto& e : events) {
        log(e.level != AlarmLevel::ok, e.message(), "pool/" + e.pool);
        auto argv = alert_command_of(config, e.pool);
        if (argv.empty()) continue;
        if (auto st = run_alert(runner, argv, e, node); !st)
            log(true, st.error().message, "pool/" + e.pool);
    }
    return events;
}

}  // namespace sanagent::agent
