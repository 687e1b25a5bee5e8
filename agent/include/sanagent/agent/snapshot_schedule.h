// Scheduled thin snapshots of a volume: `snapshots = { every = "1h", keep = 24 }`.
// sanagentd, after each pass, takes a snapshot of each such volume when the
// newest automatic one is `every` old (or there is none), named
// <volume>+auto-YYYYmmddTHHMMSS (UTC: the name carries the time, so no lvm
// field is needed to order them), tagged `sanagent` and `sanagent-auto`; then
// removes the oldest automatic ones beyond `keep`. Only LVs with the
// sanagent-auto tag are ever pruned: a manual snapshot (sanctl snapshot
// create) is never deleted, whatever its name.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "sanagent/agent/config.h"
#include "sanagent/lvm/report.h"
#include "sanagent/process.h"

namespace sanagent::agent {

inline constexpr const char* kAutoSnapshotTag = "sanagent-auto";

struct SnapshotSchedule {
    std::chrono::seconds every{3600};
    unsigned keep = 24;
};

// From the config's table; an Error says what is wrong (for validate()).
Result<SnapshotSchedule> parse_schedule(const std::map<std::string, std::string>& table);

// "<volume>+auto-20261125T110000" for that UTC second; and back (nullopt for
// any other name).
std::string auto_snapshot_lv(const std::string& volume, std::chrono::system_clock::time_point when);
std::optional<std::chrono::system_clock::time_point> auto_snapshot_time(const std::string& volume,
                                                                        const std::string& lv);

struct ScheduleDecision {
    std::optional<std::string> take;  // the LV to create
    std::vector<std::string> prune;   // automatic snapshots to remove, oldest first
};

// `automatic`: the names of the volume's automatic snapshot LVs (tagged
// sanagent-auto). Pure: the clock is an argument.
ScheduleDecision decide_snapshots(const std::string& volume, const SnapshotSchedule& schedule,
                                  const std::vector<std::string>& automatic,
                                  std::chrono::system_clock::time_point now);

struct ScheduleLog {
    bool failed = false;
    std::string object;
    std::string message;
};

// One pass over every volume with a schedule: decisions from one lvs report,
// run through the runner. Returns what it did, for the log.
std::vector<ScheduleLog> run_snapshot_schedules(const Config& config, const std::vector<lvm::LogicalVolumeState>& lvs,
                                                CommandRunner& runner, std::chrono::system_clock::time_point now);

}  // namespace sanagent::agent
