#include "sanagent/agent/snapshot_schedule.h"

#include <algorithm>
#include <charconv>
#include <ctime>

#include "sanagent/agent/lvm_modules.h"
#include "sanagent/agent/units.h"
#include "sanagent/lvm/volumes.h"

namespace sanagent::agent {

namespace {

constexpr std::string_view kAutoPrefix = "+auto-";

bool has_tag(const lvm::LogicalVolumeState& lv, const std::string& tag) {
    return std::find(lv.tags.begin(), lv.tags.end(), tag) != lv.tags.end();
}

}  // namespace

Result<SnapshotSchedule> parse_schedule(const std::map<std::string, std::string>& table) {
    SnapshotSchedule s;
    for (const auto& [k, v] : table)
        if (k != "every" && k != "keep")
            return Error{EINVAL, "unknown key \"" + k.substr(0, 40) + "\" (expected every, keep)"};
    auto every = table.find("every");
    if (every == table.end()) return Error{EINVAL, "expected every = \"<duration>\", like \"1h\""};
    auto d = parse_duration(every->second);
    if (!d) return Error{EINVAL, "every: " + d.error().message};
    if (*d < std::chrono::seconds(1) || d->count() % 1000 != 0)
        return Error{EINVAL, "every: expected whole seconds, at least 1s (snapshot names carry the second), got \"" +
                                 every->second.substr(0, 40) + "\""};
    s.every = std::chrono::duration_cast<std::chrono::seconds>(*d);
    auto keep = table.find("keep");
    if (keep == table.end()) return Error{EINVAL, "expected keep = <how many automatic snapshots to keep>"};
    unsigned n = 0;
    auto [end, ec] = std::from_chars(keep->second.data(), keep->second.data() + keep->second.size(), n);
    if (ec != std::errc() || end != keep->second.data() + keep->second.size() || n < 1 || n > 1000)
        return Error{EINVAL, "keep: expected a whole number from 1 to 1000, got \"" + keep->second.substr(0, 40) + "\""};
    s.keep = n;
    return s;
}

std::string auto_snapshot_lv(const std::string& volume, std::chrono::system_clock::time_point when) {
    const std::time_t t = std::chrono::system_clock::to_time_t(when);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%S", &tm);
    return volume + std::string(kAutoPrefix) + buf;
}

std::optional<std::chrono::system_clock::time_point> auto_snapshot_time(const std::string& volume,
                                                                        const std::string& lv) {
    const std::string prefix = volume + std::string(kAutoPrefix);
    if (lv.size() != prefix.size() + 15 || lv.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
    std::tm tm{};
    const char* end = ::strptime(lv.c_str() + prefix.size(), "%Y%m%dT%H%M%S", &tm);
    if (!end || *end != '\0') return std::nullopt;
    return std::chrono::system_clock::from_time_t(::timegm(&tm));
}

ScheduleDecision decide_snapshots(const std::string& volume, const SnapshotSchedule& schedule,
                                  const std::vector<std::string>& automatic,
                                  std::chrono::system_clock::time_point now) {
    std::vector<std::pair<std::chrono::system_clock::time_point, std::string>> dated;
    for (const auto& lv : automatic)
        if (auto t = auto_snapshot_time(volume, lv)) dated.emplace_back(*t, lv);
    std::sort(dated.begin(), dated.end());
    ScheduleDecision d;
    const std::string name = auto_snapshot_lv(volume, now);
    const bool exists = std::any_of(dated.begin(), dated.end(), [&](const auto& p) { return p.second == name; });
    if (!exists && (dated.empty() || now - dated.back().first >= schedule.every)) {
        d.take = name;
        dated.emplace_back(now, name);
    }
    // The newest `keep` stay (the one just taken counts).
    for (std::size_t i = 0; i + schedule.keep < dated.size(); ++i) d.prune.push_back(dated[i].second);
    return d;
}

std::vector<ScheduleLog> run_snapshot_schedules(const Config& config, const std::vector<lvm::LogicalVolumeState>& lvs,
                                                CommandRunner& runner, std::chrono::system_clock::time_point now) {
    std::vector<ScheduleLog> out;
    if (!is_storage_node(config)) return out;
    for (const auto* volume : config.objects("volume")) {
        const ConfigValue* v = config.value("volume", volume->name, "snapshots");
        if (!v) continue;
        auto schedule = parse_schedule(std::get<std::map<std::string, std::string>>(v->data));
        if (!schedule) continue;  // validate() refused the config already
        const std::string object = "volume/" + volume->name;
        const std::string vg = config.get_string("pool", pool_of_volume(config, volume->name), "vg");
        const lvm::LogicalVolumeState* origin = nullptr;
        std::vector<std::string> automatic;
        for (const auto& lv : lvs) {
            if (lv.vg != vg) continue;
            if (lv.name == volume->name) origin = &lv;
            // By name and tag, not origin: a snapshot kept through a rollback
            // is a copy whose origin is gone.
            if (lv.name.rfind(volume->name + "+", 0) == 0 && has_tag(lv, kAutoSnapshotTag) &&
                has_tag(lv, lvm::kOwnerTag))
                automatic.push_back(lv.name);
        }
        if (!origin || !origin->is_thin_volume() || !has_tag(*origin, lvm::kOwnerTag)) continue;
        auto d = decide_snapshots(volume->name, *schedule, automatic, now);
        if (d.take) {
            Command cmd({"lvm", "lvcreate", "--snapshot", "--addtag", lvm::kOwnerTag, "--addtag", kAutoSnapshotTag,
                         "--name", *d.take, vg + "/" + volume->name});
            auto r = check_exit(cmd, runner.run(cmd));
            if (!r) {
                // Pruning after a failed snapshot would only shrink the history.
                out.push_back({true, object, "scheduled snapshot " + *d.take + ": " + r.error().message});
                continue;
            }
            out.push_back({false, object, "scheduled snapshot " + vg + "/" + *d.take});
        }
        for (const auto& lv : d.prune) {
            Command cmd({"lvm", "lvremove", "--yes", vg + "/" + lv});
            auto r = check_exit(cmd, runner.run(cmd));
            out.push_back({!r.ok(), object,
                           r ? "pruned automatic snapshot " + vg + "/" + lv + " (keep " +
                                   std::to_string(schedule->keep) + ")"
                             : "pruning " + lv + ": " + r.error().message});
        }
    }
    return out;
}

}  // namespace sanagent::agent
