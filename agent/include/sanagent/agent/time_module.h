// The time module: one time source for every node and host, through chrony.
//
// It writes chrony drop-ins, never chrony.conf: server/pool lines in
// /etc/chrony/sources.d/sanagent.sources (applied with `chronyc reload
// sources`), allow/local in /etc/chrony/conf.d/sanagent.conf (applied by
// `systemctl try-restart chrony.service` when systemd runs the machine; else
// the admin is told to restart chronyd). Both are written to a temporary file
// and renamed, so a half-written drop-in never stays. A chrony.conf without the
// confdir/sourcedir lines is reported with the line to add. The time zone is
// the /etc/localtime link into /usr/share/zoneinfo, as systemd keeps it.
//
// status() judges synchronisation from `chronyc -n -c tracking` and `-c
// sources` (chrony.h) and reports another NTP daemon (systemd-timesyncd, ntpd)
// without stopping it.
//
// Every path is below `root` ("/" on a machine, a temporary directory in unit
// tests), and every command goes through the CommandRunner.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>

#include "sanagent/agent/chrony.h"
#include "sanagent/agent/module.h"
#include "sanagent/process.h"

namespace sanagent::agent {

class TimeModule final : public Module {
public:
    TimeModule(std::shared_ptr<CommandRunner> runner, std::filesystem::path root = "/")
        : runner_(std::move(runner)), root_(std::move(root)) {}

    static constexpr const char* kSources = "time/sources";
    static constexpr const char* kServe = "time/serve";
    static constexpr const char* kZone = "time/zone";
    static constexpr const char* kSync = "time/sync";

    // The paths as the machine names them (below root_ on disk).
    static constexpr const char* kChronyConf = "/etc/chrony/chrony.conf";
    static constexpr const char* kConfDir = "/etc/chrony/conf.d";
    static constexpr const char* kSourceDir = "/etc/chrony/sources.d";
    static constexpr const char* kSourcesFile = "/etc/chrony/sources.d/sanagent.sources";
    static constexpr const char* kConfFile = "/etc/chrony/conf.d/sanagent.conf";
    static constexpr const char* kChronyd = "/usr/sbin/chronyd";
    static constexpr const char* kLocaltime = "/etc/localtime";
    static constexpr const char* kZoneinfo = "/usr/share/zoneinfo";

    std::string_view name() const override { return "time"; }
    void validate(const Config& config, Diagnostics& diagnostics) const override;
    Status observe() override;
    std::vector<std::string> desired_objects(const Config& config) const override;
    std::vector<Step> plan(const Config& config, const Ownership& owned) override;
    std::vector<ObjectStatus> status(const Config& config, const Ownership& owned) override;

    // [time] with its defaults; only meaningful when the section exists.
    static chrony::TimeSpec spec(const Config& config);

private:
    struct Observed {
        bool chrony_installed = false;
        chrony::ChronyConf conf;
        std::optional<std::string> sources_file;  // content, when present
        std::optional<std::string> conf_file;
        std::optional<std::string> localtime_link;  // the link's target, when it is a link
        bool localtime_exists = false;
        bool systemd = false;  // systemd is PID 1 (/run/systemd/system)
        bool chronyd_running = false;
        std::vector<std::string> other_daemons;  // "systemd-timesyncd (pid 412)"
        std::optional<chrony::Tracking> tracking;
        std::vector<chrony::Source> sources;
        std::string chronyc_error;  // why tracking/sources could not be read
    };

    void read_chronyc();
    bool same_zone(const std::string& link, const std::string& zone) const;
    std::filesystem::path at(const char* path) const { return root_ / (path + 1); }
    void drop_in_steps(std::vector<Step>& steps, const char* object, const char* path,
                       const std::optional<std::string>& current, const std::string& desired, bool reload_sources,
                       const Ownership& owned) const;
    ObjectStatus drop_in_status(const char* object, const char* path, const std::optional<std::string>& current,
                                const std::string& desired, bool read_by_chrony, const char* directive, const char* dir,
                                const Ownership& owned) const;

    std::shared_ptr<CommandRunner> runner_;
    std::filesystem::path root_;
    Observed observed_;
};

}  // namespace sanagent::agent
