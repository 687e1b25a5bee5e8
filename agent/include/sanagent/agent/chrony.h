// chrony as the time module sees it, as pure functions: the drop-ins rendered
// from [time], the directives of an installed chrony.conf, and the CSV that
// `chronyc -c tracking` / `chronyc -c sources` print (chrony 4.x), parsed by
// position and judged against max_offset. No I/O here: the module
// (time_module.h) reads and runs, unit tests feed recorded outputs.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sanagent/result.h"

namespace sanagent::agent::chrony {

// [time], resolved.
struct TimeSpec {
    std::vector<std::string> servers;
    std::vector<std::string> pools;
    std::string prefer;  // one of servers or pools, or empty
    std::optional<int> minpoll;
    std::optional<int> maxpoll;
    std::vector<std::string> serve_to;  // chrony `allow` subnets
    int local_stratum = 0;              // 0: off
    std::chrono::milliseconds max_offset{100};
    std::string timezone = "UTC";
};

// The first line of every file the agent writes; a file without it is someone else's.
inline constexpr std::string_view kHeader =
    "# Written by sanagent from /etc/sanagent ([time]); edits are overwritten.\n";

// /etc/chrony/sources.d/sanagent.sources: server and pool lines only (sourcedir
// files take nothing else), changed at run time by `chronyc reload sources`.
std::string render_sources(const TimeSpec& spec);
// /etc/chrony/conf.d/sanagent.conf: allow and local stratum, read at chronyd's
// start. Empty when [time] asks for neither (then no file is wanted).
std::string render_conf(const TimeSpec& spec);

// What an installed chrony.conf reads, from its confdir/sourcedir/include lines.
struct ChronyConf {
    bool reads_confdir = false;            // *.conf of the conf.d directory
    bool reads_sourcedir = false;          // *.sources of the sources.d directory
    std::vector<std::string> own_sources;  // server/pool/peer lines of chrony.conf itself
};
ChronyConf parse_chrony_conf(std::string_view text, std::string_view confdir, std::string_view sourcedir);

// `chronyc -n -c tracking`: one line of 14 fields.
struct Tracking {
    std::string reference_id;  // 8 hex digits; 7F7F0101 is the local clock
    std::string reference;     // address of the selected source ("" or "127.127.1.1" when none)
    int stratum = 0;
    double ref_time = 0;
    double system_time = 0;  // seconds; the clock's current offset from NTP time
    double last_offset = 0;
    double rms_offset = 0;
    double frequency_ppm = 0;
    double residual_frequency_ppm = 0;
    double skew_ppm = 0;
    double root_delay = 0;
    double root_dispersion = 0;
    double update_interval = 0;
    std::string leap_status;  // Normal, Insert second, Delete second, Not synchronised
};
Result<Tracking> parse_tracking(std::string_view csv);

// `chronyc -n -c sources`: one line of 10 fields per source.
struct Source {
    char mode = '?';   // ^ server, = peer, # reference clock
    char state = '?';  // * selected, + combined, - not combined, ? unreachable, x falseticker, ~ too variable
    std::string address;
    int stratum = 0;
    int poll = 0;
    int reach = 0;     // the octal register, as a number (0377 = 255: the last 8 polls answered)
    long last_rx = 0;  // seconds since the last sample (-1 when none; chronyc prints a huge number)
    double adjusted_offset = 0;
    double measured_offset = 0;
    double error = 0;
};
Result<std::vector<Source>> parse_sources(std::string_view csv);
std::string_view state_text(char state);

// Synchronised: leap status normal, a selected source, stratum below 16 and
// |system time offset| below max_offset; otherwise the first reason it is not.
struct Verdict {
    bool synchronised = false;
    std::string reason;  // empty when synchronised
};
Verdict judge(const Tracking& tracking, const std::vector<Source>& sources, std::chrono::milliseconds max_offset);

// "+0.000012s"
std::string format_offset(double seconds);

// Config syntax checks (before a value reaches a file or chronyc).
bool is_host_name(std::string_view text);  // RFC 1123 labels, at most 253 characters
bool is_address(std::string_view text);    // IPv4 or IPv6 literal
bool is_subnet(std::string_view text);     // address or address/prefix
bool is_zone_name(std::string_view text);  // "Europe/Paris": no "..", no leading "/", [A-Za-z0-9_+-]

}  // namespace sanagent::agent::chrony
