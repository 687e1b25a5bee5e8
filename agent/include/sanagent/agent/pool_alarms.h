// Space alarms of thin pools: each pool's data and metadata use against its
// warn_at / critical_at. A crossing (a level change: ok -> warning ->
// critical, or back) is reported once, not at every pass: the level last
// reported is kept in <state_dir>/pool-alarms.json, so a daemon restart or a
// config reload does not report the same crossing again.
//
// On a crossing upwards the pool's `alert_command` (or [agent] alert_command)
// runs: an argv (absolute path first, no shell), the details in environment
// variables SANAGENT_POOL, SANAGENT_VG, SANAGENT_LEVEL (warning|critical|ok),
// SANAGENT_PREVIOUS_LEVEL, SANAGENT_METRIC (data|metadata), SANAGENT_PERCENT,
// SANAGENT_THRESHOLD, SANAGENT_NODE. It is bounded in time (kAlertTimeout);
// its failure is logged, never fatal. A return to below warn_at is logged and
// runs the command too (SANAGENT_LEVEL=ok), so a pager can close its incident.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "sanagent/agent/config.h"
#include "sanagent/lvm/report.h"
#include "sanagent/process.h"

namespace sanagent::agent {

enum class AlarmLevel { ok, warning, critical };
std::string_view alarm_level_name(AlarmLevel level);

struct PoolReading {
    std::string pool;  // the [pool.NAME]
    std::string vg;
    double data_percent = 0;
    double metadata_percent = 0;
    double warn_at = 80;
    double critical_at = 90;
};

struct AlarmEvent {
    std::string pool;
    std::string vg;
    std::string metric;  // "data" | "metadata"
    AlarmLevel level = AlarmLevel::ok;
    AlarmLevel previous = AlarmLevel::ok;
    double percent = 0;
    double threshold = 0;  // the threshold crossed (warn_at or critical_at; warn_at when back to ok)

    std::string message() const;  // one line for the log
};

AlarmLevel level_of(double percent, double warn_at, double critical_at);

inline constexpr std::chrono::seconds kAlertTimeout{30};

class PoolAlarms {
public:
    // The levels last reported, from the state file (absent: all ok).
    static Result<PoolAlarms> load(const std::filesystem::path& state_dir);
    Status save(const std::filesystem::path& state_dir) const;

    // The crossings since the last update; remembers the new levels.
    std::vector<AlarmEvent> update(const std::vector<PoolReading>& readings);

    AlarmLevel level(const std::string& pool, const std::string& metric) const;

private:
    std::map<std::string, AlarmLevel> levels_;  // "pool/metric"
};

// The pools of a storage node's config read from one lvs report (pools whose
// thin pool does not exist yet are left out).
std::vector<PoolReading> pool_readings(const Config& config, const std::vector<lvm::LogicalVolumeState>& lvs);

// The alert command for a pool: its own alert_command, else [agent]'s; empty: none.
std::vector<std::string> alert_command_of(const Config& config, const std::string& pool);

// Runs the alert command for one event with the details in its environment.
Status run_alert(CommandRunner& runner, const std::vector<std::string>& argv, const AlarmEvent& event,
                 const std::string& node);

using AlarmLog = std::function<void(bool warning, const std::string& message, const std::string& object)>;

// One pass: readings -> crossings -> log + alert commands -> state saved.
// Returns the events (for tests and the daemon's own counting).
std::vector<AlarmEvent> check_pool_alarms(const Config& config, const std::vector<lvm::LogicalVolumeState>& lvs,
                                          const std::filesystem::path& state_dir, CommandRunner& runner,
                                          const AlarmLog& log);

}  // namespace sanagent::agent
