#include "sanagent/agent/time_module.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace sanagent::agent {

namespace fs = std::filesystem;

namespace {

constexpr std::chrono::seconds kChronycBound{5};
constexpr std::chrono::seconds kRestartBound{60};

std::optional<std::string> read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Write to a temporary file in the same directory, fsync, rename: a reader
// (chronyd at its start) sees the old file or the new one, never a part.
Status write_atomically(const fs::path& path, const std::string& content) {
    const fs::path tmp = path.parent_path() / ("." + path.filename().string() + ".sanagent-tmp");
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) return last_errno("creating " + tmp.string());
    std::size_t done = 0;
    while (done < content.size()) {
        ssize_t n = ::write(fd, content.data() + done, content.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            Error e = last_errno("writing " + tmp.string());
            ::close(fd);
            ::unlink(tmp.c_str());
            return e;
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fchmod(fd, 0644) != 0 || ::fsync(fd) != 0) {
        Error e = last_errno("syncing " + tmp.string());
        ::close(fd);
        ::unlink(tmp.c_str());
        return e;
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        Error e = last_errno("renaming " + tmp.string() + " to " + path.string());
        ::unlink(tmp.c_str());
        return e;
    }
    return {};
}

Status remove_file(const fs::path& path) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return last_errno("removing " + path.string());
    return {};
}

// Make `path` a symlink to `target` by renaming a fresh link over it.
Status link_atomically(const fs::path& path, const std::string& target) {
    const fs::path tmp = path.parent_path() / ("." + path.filename().string() + ".sanagent-tmp");
    ::unlink(tmp.c_str());
    if (::symlink(target.c_str(), tmp.c_str()) != 0) return last_errno("linking " + tmp.string() + " to " + target);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        Error e = last_errno("renaming " + tmp.string() + " to " + path.string());
        ::unlink(tmp.c_str());
        return e;
    }
    return {};
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
    std::string s;
    for (const auto& i : items) s += (s.empty() ? "" : sep) + i;
    return s;
}

// The drop-in's lines without the header, for status: "server a iburst; pool b iburst".
std::string summary(const std::string& content) {
    std::vector<std::string> lines;
    std::istringstream in(content);
    for (std::string line; std::getline(in, line);)
        if (!line.empty() && line.front() != '#') lines.push_back(line);
    return lines.empty() ? "(nothing)" : join(lines, "; ");
}

bool ours(const std::string& content) {
    return content.starts_with(chrony::kHeader);
}

// Daemons that would steer the clock too. comm is truncated to 15 characters.
constexpr std::pair<std::string_view, std::string_view> kOtherDaemons[] = {
    {"systemd-timesyn", "systemd-timesyncd"}, {"ntpd", "ntpd"}, {"openntpd", "openntpd"}};

std::string zone_of(const std::string& link) {
    const std::string prefix = std::string(TimeModule::kZoneinfo) + "/";
    if (link.starts_with(prefix)) return link.substr(prefix.size());
    // Debian's own links are relative ("../usr/share/zoneinfo/Etc/UTC").
    auto pos = link.find("/zoneinfo/");
    return pos == std::string::npos ? link : link.substr(pos + 10);
}

}  // namespace

chrony::TimeSpec TimeModule::spec(const Config& config) {
    chrony::TimeSpec s;
    s.servers = config.get_list("time", "", "servers");
    s.pools = config.get_list("time", "", "pools");
    s.prefer = config.get_string("time", "", "prefer");
    if (config.value("time", "", "minpoll")) s.minpoll = static_cast<int>(config.get_integer("time", "", "minpoll"));
    if (config.value("time", "", "maxpoll")) s.maxpoll = static_cast<int>(config.get_integer("time", "", "maxpoll"));
    s.serve_to = config.get_list("time", "", "serve_to");
    s.local_stratum = static_cast<int>(config.get_integer("time", "", "local_stratum"));
    s.max_offset = config.get_duration("time", "", "max_offset");
    s.timezone = config.get_string("time", "", "timezone");
    return s;
}

void TimeModule::validate(const Config& config, Diagnostics& diagnostics) const {
    const auto* section = config.find("time");
    if (!section) return;
    auto shown = [](const std::string& s) { return "\"" + s.substr(0, 80) + "\""; };
    for (const char* key : {"servers", "pools"})
        if (const auto* v = config.value("time", "", key))
            for (const auto& host : std::get<std::vector<std::string>>(v->data))
                if (!chrony::is_host_name(host) && !chrony::is_address(host))
                    diagnostics.error(v->origin, "time", key,
                                      "expected a host name or an IP address, got " + shown(host));
    if (const auto* v = config.value("time", "", "serve_to"))
        for (const auto& subnet : std::get<std::vector<std::string>>(v->data))
            if (!chrony::is_subnet(subnet))
                diagnostics.error(v->origin, "time", "serve_to",
                                  "expected an address or a subnet like \"10.0.10.0/24\", got " + shown(subnet));
    if (const auto* v = config.value("time", "", "prefer")) {
        const auto s = spec(config);
        const auto& name = std::get<std::string>(v->data);
        if (std::find(s.servers.begin(), s.servers.end(), name) == s.servers.end() &&
            std::find(s.pools.begin(), s.pools.end(), name) == s.pools.end())
            diagnostics.error(v->origin, "time", "prefer", "expected one of servers or pools, got " + shown(name));
    }
    const auto* minpoll = config.value("time", "", "minpoll");
    const auto* maxpoll = config.value("time", "", "maxpoll");
    if (minpoll && maxpoll && std::get<std::int64_t>(minpoll->data) > std::get<std::int64_t>(maxpoll->data))
        diagnostics.error(maxpoll->origin, "time", "maxpoll", "expected maxpoll >= minpoll");
    const auto* zone = config.value("time", "", "timezone");
    const std::string tz = config.get_string("time", "", "timezone");
    const Origin zone_origin = zone ? zone->origin : section->origin;
    std::error_code ec;
    if (!chrony::is_zone_name(tz))
        diagnostics.error(zone_origin, "time", "timezone",
                          "expected a zone name like \"Europe/Paris\" or \"UTC\", got " + shown(tz));
    else if (!fs::is_regular_file(at(kZoneinfo) / tz, ec))
        diagnostics.error(zone_origin, "time", "timezone",
                          "no zone " + shown(tz) + " in " + std::string(kZoneinfo) + " (is tzdata installed?)");
    if (!fs::exists(at(kChronyd), ec) || !fs::exists(at(kChronyConf), ec))
        diagnostics.error(section->origin, "time", {},
                          "chrony is not installed (no " + std::string(kChronyd) + " or " + kChronyConf +
                              "): install the chrony package");
}

Status TimeModule::observe() {
    observed_ = {};
    std::error_code ec;
    auto conf = read_file(at(kChronyConf));
    observed_.chrony_installed = conf.has_value() && fs::exists(at(kChronyd), ec);
    if (conf) observed_.conf = chrony::parse_chrony_conf(*conf, kConfDir, kSourceDir);
    observed_.sources_file = read_file(at(kSourcesFile));
    observed_.conf_file = read_file(at(kConfFile));
    observed_.localtime_exists = fs::exists(fs::symlink_status(at(kLocaltime), ec));
    if (fs::is_symlink(fs::symlink_status(at(kLocaltime), ec))) {
        auto target = fs::read_symlink(at(kLocaltime), ec);
        if (!ec) observed_.localtime_link = target.string();
    }
    observed_.systemd = fs::is_directory(at("/run/systemd/system"), ec);

    for (const auto& entry : fs::directory_iterator(at("/proc"), ec)) {
        const auto pid = entry.path().filename().string();
        if (pid.empty() || !std::all_of(pid.begin(), pid.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
        auto comm = read_file(entry.path() / "comm");
        if (!comm) continue;
        while (!comm->empty() && comm->back() == '\n') comm->pop_back();
        if (*comm == "chronyd") observed_.chronyd_running = true;
        for (const auto& [c, name] : kOtherDaemons)
            if (*comm == c) observed_.other_daemons.push_back(std::string(name) + " (pid " + pid + ")");
    }
    return {};
}

// chronyc is asked only when the config has [time] (observe() does not see
// the config), so a node without [time] runs no chrony command at all.
void TimeModule::read_chronyc() {
    Command tracking_cmd({"chronyc", "-n", "-c", "tracking"}, kChronycBound);
    auto tracking = check_exit(tracking_cmd, runner_->run(tracking_cmd));
    if (!tracking) {
        observed_.chronyc_error = tracking.error().message;
        return;
    }
    auto parsed = chrony::parse_tracking(tracking->out);
    if (!parsed) {
        observed_.chronyc_error = parsed.error().message;
        return;
    }
    observed_.tracking = *parsed;
    Command sources_cmd({"chronyc", "-n", "-c", "sources"}, kChronycBound);
    auto sources = check_exit(sources_cmd, runner_->run(sources_cmd));
    if (!sources) {
        observed_.chronyc_error = sources.error().message;
        observed_.tracking.reset();
        return;
    }
    auto list = chrony::parse_sources(sources->out);
    if (!list) {
        observed_.chronyc_error = list.error().message;
        observed_.tracking.reset();
        return;
    }
    observed_.sources = std::move(*list);
}

// Debian's zoneinfo links aliases to one file (UTC -> Etc/UTC): a link to any
// name of the wanted zone file is already right and is not rewritten.
bool TimeModule::same_zone(const std::string& link, const std::string& zone) const {
    const std::string current = zone_of(link);
    if (current == zone) return true;
    if (!chrony::is_zone_name(current)) return false;
    std::error_code ec;
    return fs::equivalent(at(kZoneinfo) / current, at(kZoneinfo) / zone, ec);
}

std::vector<std::string> TimeModule::desired_objects(const Config& config) const {
    if (!config.find("time")) return {};
    std::vector<std::string> objects{kSources};
    if (!chrony::render_conf(spec(config)).empty()) objects.push_back(kServe);
    objects.push_back(kZone);
    objects.push_back(kSync);
    return objects;
}

void TimeModule::drop_in_steps(std::vector<Step>& steps, const char* object, const char* path,
                               const std::optional<std::string>& current, const std::string& desired,
                               bool reload_sources, const Ownership& owned) const {
    if (current == desired) return;
    if (current && !ours(*current) && !owned.owns(object)) return;  // foreign: status says so
    const fs::path file = at(path);
    const auto previous = current;
    steps.push_back({object,
                     std::string(previous ? "rewrite " : "write ") + path + " (" + summary(desired) + ")",
                     [file, desired]() { return write_atomically(file, desired); },
                     [file, previous]() { return previous ? write_atomically(file, *previous) : remove_file(file); },
                     true,
                     {}});
    if (!observed_.chronyd_running) return;  // read when chronyd starts
    auto runner = runner_;
    if (reload_sources) {
        steps.push_back({object,
                         "chronyc reload sources",
                         [runner]() -> Status {
                             Command cmd({"chronyc", "reload", "sources"}, kChronycBound);
                             auto out = check_exit(cmd, runner->run(cmd));
                             if (!out) return out.error();
                             return {};
                         },
                         {},
                         false,
                         {}});
    } else if (observed_.systemd) {
        steps.push_back({object,
                         "systemctl try-restart chrony.service (allow and local are read at start)",
                         [runner]() -> Status {
                             Command cmd({"systemctl", "try-restart", "chrony.service"}, kRestartBound);
                             auto out = check_exit(cmd, runner->run(cmd));
                             if (!out) return out.error();
                             return {};
                         },
                         {},
                         false,
                         {}});
    }
}

std::vector<Step> TimeModule::plan(const Config& config, const Ownership& owned) {
    std::vector<Step> steps;
    if (!config.find("time") || !observed_.chrony_installed) return steps;
    const auto s = spec(config);
    if (observed_.conf.reads_sourcedir)
        drop_in_steps(steps, kSources, kSourcesFile, observed_.sources_file, chrony::render_sources(s), true, owned);
    const std::string conf = chrony::render_conf(s);
    if (!conf.empty() && observed_.conf.reads_confdir)
        drop_in_steps(steps, kServe, kConfFile, observed_.conf_file, conf, false, owned);

    const std::string target = std::string(kZoneinfo) + "/" + s.timezone;
    if (!observed_.localtime_link || !same_zone(*observed_.localtime_link, s.timezone)) {
        const fs::path link = at(kLocaltime);
        const auto previous_link = observed_.localtime_link;
        const bool previous_exists = observed_.localtime_exists;
        // A copied zone file (not a link) is kept so the undo can put it back.
        const auto previous_file = previous_link ? std::nullopt : read_file(link);
        if (observed_.systemd && previous_link) {
            // Under systemd the unit's ProtectSystem=strict keeps /etc read-only,
            // and timedated owns the link: ask it, as timedatectl does.
            auto runner = runner_;
            const std::string zone = s.timezone, was = zone_of(*previous_link);
            steps.push_back({kZone, "timedatectl set-timezone " + zone + " (was " + was + ")",
                             [runner, zone]() -> Status {
                                 Command c({"timedatectl", "set-timezone", zone});
                                 auto r = check_exit(c, runner->run(c));
                                 if (!r) return r.error();
                                 return {};
                             },
                             [runner, was]() -> Status {
                                 Command c({"timedatectl", "set-timezone", was});
                                 auto r = check_exit(c, runner->run(c));
                                 if (!r) return r.error();
                                 return {};
                             },
                             true,
                             {}});
            return steps;
        }
        steps.push_back({kZone,
                         "link " + std::string(kLocaltime) + " to " + target + " (was " +
                             (previous_link     ? *previous_link
                              : previous_exists ? "a file"
                                                : "absent") +
                             ")",
                         [link, target]() { return link_atomically(link, target); },
                         [link, previous_link, previous_file]() -> Status {
                             if (previous_link) return link_atomically(link, *previous_link);
                             if (previous_file) return write_atomically(link, *previous_file);
                             return remove_file(link);
                         },
                         true,
                         {}});
    }
    return steps;
}

ObjectStatus TimeModule::drop_in_status(const char* object, const char* path, const std::optional<std::string>& current,
                                        const std::string& desired, bool read_by_chrony, const char* directive,
                                        const char* dir, const Ownership& owned) const {
    ObjectStatus st{
        object, summary(desired), current ? summary(*current) : "(no " + std::string(path) + ")", Health::ok, {}};
    if (!read_by_chrony) {
        st.health = Health::degraded;
        st.detail = std::string(kChronyConf) + " does not read " + dir + ": add the line `" + directive + " " + dir +
                    "` to it (sanagent never edits chrony.conf)";
    } else if (current && !ours(*current) && !owned.owns(object)) {
        st.health = Health::foreign;
        st.detail = std::string(path) + " was not written by sanagent; not changed";
    } else if (current != desired) {
        st.health = Health::degraded;
        st.detail = "not applied yet";
    }
    return st;
}

std::vector<ObjectStatus> TimeModule::status(const Config& config, const Ownership& owned) {
    std::vector<ObjectStatus> out;
    if (!config.find("time")) return out;
    const auto s = spec(config);
    if (!observed_.chrony_installed) {
        for (const auto& object : desired_objects(config))
            out.push_back({object, "(config)", "chrony not installed", Health::failed,
                           "no " + std::string(kChronyConf) + ": install the chrony package"});
        return out;
    }

    auto sources = drop_in_status(kSources, kSourcesFile, observed_.sources_file, chrony::render_sources(s),
                                  observed_.conf.reads_sourcedir, "sourcedir", kSourceDir, owned);
    if (sources.health == Health::ok && !observed_.conf.own_sources.empty())
        sources.detail = "chrony.conf also has " + join(observed_.conf.own_sources, ", ") +
                         " (not changed; comment it out for one time source)";
    out.push_back(std::move(sources));
    if (const auto conf = chrony::render_conf(s); !conf.empty()) {
        auto serve = drop_in_status(kServe, kConfFile, observed_.conf_file, conf, observed_.conf.reads_confdir,
                                    "confdir", kConfDir, owned);
        if (serve.health == Health::ok && !observed_.systemd && observed_.chronyd_running)
            serve.detail = "chronyd runs outside systemd: restart it after a change of serve_to or local_stratum";
        out.push_back(std::move(serve));
    }

    ObjectStatus zone{kZone,
                      s.timezone,
                      observed_.localtime_link     ? zone_of(*observed_.localtime_link)
                      : observed_.localtime_exists ? "(a copied zone file)"
                                                   : "(no /etc/localtime: UTC)",
                      Health::ok,
                      {}};
    if (!observed_.localtime_link || !same_zone(*observed_.localtime_link, s.timezone)) {
        zone.health = Health::degraded;
        zone.detail = "not applied yet";
    }
    out.push_back(std::move(zone));

    const std::string want = "synchronised (|offset| < " + std::to_string(s.max_offset.count()) + "ms)";
    ObjectStatus sync{kSync, want, "unsynchronised", Health::degraded, {}};
    if (observed_.chronyd_running) read_chronyc();
    if (!observed_.chronyd_running) {
        sync.detail = "chronyd is not running";
    } else if (!observed_.tracking) {
        sync.actual = "unknown";
        sync.detail = observed_.chronyc_error;
    } else {
        const auto& t = *observed_.tracking;
        const auto verdict = chrony::judge(t, observed_.sources, s.max_offset);
        if (verdict.synchronised) {
            sync.health = Health::ok;
            sync.actual = "synchronised to " + t.reference + " stratum " + std::to_string(t.stratum) + " offset " +
                          chrony::format_offset(t.system_time);
        } else {
            sync.actual = "unsynchronised (stratum " + std::to_string(t.stratum) + ", offset " +
                          chrony::format_offset(t.system_time) + ")";
            sync.detail = verdict.reason;
        }
    }
    if (!observed_.other_daemons.empty()) {
        sync.health = Health::degraded;
        sync.detail += std::string(sync.detail.empty() ? "" : "; ") + join(observed_.other_daemons, ", ") +
                       " also steers the clock: stop and disable it (sanagent leaves it alone)";
    }
    out.push_back(std::move(sync));
    return out;
}

}  // namespace sanagent::agent
