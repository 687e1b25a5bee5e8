#include "sanagent/agent/chrony.h"

#include <arpa/inet.h>

#include <charconv>
#include <cmath>
#include <cstdio>

namespace sanagent::agent::chrony {

namespace {

std::string source_options(const TimeSpec& spec, const std::string& name) {
    std::string s = " iburst";
    if (spec.minpoll) s += " minpoll " + std::to_string(*spec.minpoll);
    if (spec.maxpoll) s += " maxpoll " + std::to_string(*spec.maxpoll);
    if (!spec.prefer.empty() && spec.prefer == name) s += " prefer";
    return s;
}

std::vector<std::string_view> split(std::string_view line, char sep) {
    std::vector<std::string_view> out;
    for (;;) {
        auto pos = line.find(sep);
        out.push_back(line.substr(0, pos));
        if (pos == std::string_view::npos) return out;
        line.remove_prefix(pos + 1);
    }
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

std::string shown(std::string_view field) {
    std::string out(field.substr(0, 40));
    for (char& c : out)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    return "\"" + out + "\"";
}

template <typename T>
Status number(std::string_view field, const char* what, T& out) {
    const char* end = field.data() + field.size();
    auto [ptr, ec] = std::from_chars(field.data(), end, out);
    if (ec != std::errc{} || ptr != end)
        return Error{EINVAL, std::string("expected a number for ") + what + ", got " + shown(field)};
    return {};
}

// The first line that is not empty; chronyc prints one line for tracking.
std::string_view first_line(std::string_view text) {
    auto nl = text.find('\n');
    return trim(text.substr(0, nl));
}

}  // namespace

std::string render_sources(const TimeSpec& spec) {
    std::string s(kHeader);
    for (const auto& server : spec.servers) s += "server " + server + source_options(spec, server) + "\n";
    for (const auto& pool : spec.pools) s += "pool " + pool + source_options(spec, pool) + "\n";
    return s;
}

std::string render_conf(const TimeSpec& spec) {
    if (spec.serve_to.empty() && spec.local_stratum == 0) return {};
    std::string s(kHeader);
    for (const auto& subnet : spec.serve_to) s += "allow " + subnet + "\n";
    // Without `local`, a server that lost its own sources stops answering its
    // clients; with it, an isolated site keeps one time line.
    if (spec.local_stratum > 0) s += "local stratum " + std::to_string(spec.local_stratum) + "\n";
    return s;
}

ChronyConf parse_chrony_conf(std::string_view text, std::string_view confdir, std::string_view sourcedir) {
    ChronyConf conf;
    auto strip_slash = [](std::string_view s) {
        while (s.size() > 1 && s.back() == '/') s.remove_suffix(1);
        return s;
    };
    for (auto raw : split(text, '\n')) {
        auto line = trim(raw);
        if (line.empty() || line.front() == '#' || line.front() == '!' || line.front() == ';' || line.front() == '%')
            continue;
        std::vector<std::string_view> words;
        for (auto w : split(line, ' '))
            if (!trim(w).empty()) words.push_back(trim(w));
        if (words.size() < 2) continue;
        const auto directive = words[0];
        if (directive == "confdir" || directive == "sourcedir") {
            // Both take several directories.
            for (std::size_t i = 1; i < words.size(); ++i) {
                if (directive == "confdir" && strip_slash(words[i]) == strip_slash(confdir)) conf.reads_confdir = true;
                if (directive == "sourcedir" && strip_slash(words[i]) == strip_slash(sourcedir))
                    conf.reads_sourcedir = true;
            }
        } else if (directive == "include") {
            if (words[1] == std::string(confdir) + "/*.conf") conf.reads_confdir = true;
        } else if (directive == "server" || directive == "pool" || directive == "peer") {
            conf.own_sources.emplace_back(std::string(directive) + " " + std::string(words[1]));
        }
    }
    return conf;
}

Result<Tracking> parse_tracking(std::string_view csv) {
    auto line = first_line(csv);
    auto f = split(line, ',');
    if (f.size() != 14)
        return Error{EINVAL, "chronyc -c tracking: expected 14 comma-separated fields, got " +
                                 std::to_string(f.size()) + " in " + shown(line)};
    Tracking t;
    t.reference_id = std::string(f[0]);
    t.reference = std::string(f[1]);
    Status s;
    if (!(s = number(f[2], "stratum", t.stratum)) || !(s = number(f[3], "ref time", t.ref_time)) ||
        !(s = number(f[4], "system time", t.system_time)) || !(s = number(f[5], "last offset", t.last_offset)) ||
        !(s = number(f[6], "RMS offset", t.rms_offset)) || !(s = number(f[7], "frequency", t.frequency_ppm)) ||
        !(s = number(f[8], "residual frequency", t.residual_frequency_ppm)) ||
        !(s = number(f[9], "skew", t.skew_ppm)) || !(s = number(f[10], "root delay", t.root_delay)) ||
        !(s = number(f[11], "root dispersion", t.root_dispersion)) ||
        !(s = number(f[12], "update interval", t.update_interval)))
        return s.error().context("chronyc -c tracking");
    t.leap_status = std::string(f[13]);
    return t;
}

Result<std::vector<Source>> parse_sources(std::string_view csv) {
    std::vector<Source> out;
    for (auto raw : split(csv, '\n')) {
        auto line = trim(raw);
        if (line.empty()) continue;
        auto f = split(line, ',');
        if (f.size() != 10 || f[0].size() != 1 || f[1].size() != 1)
            return Error{EINVAL,
                         "chronyc -c sources: expected 10 comma-separated fields per source, got " + shown(line)};
        Source src;
        src.mode = f[0][0];
        src.state = f[1][0];
        src.address = std::string(f[2]);
        Status s;
        unsigned long long last_rx = 0;
        if (!(s = number(f[3], "stratum", src.stratum)) || !(s = number(f[4], "poll", src.poll)) ||
            !(s = number(f[6], "last rx", last_rx)) || !(s = number(f[7], "adjusted offset", src.adjusted_offset)) ||
            !(s = number(f[8], "measured offset", src.measured_offset)) || !(s = number(f[9], "error", src.error)))
            return s.error().context("chronyc -c sources: " + src.address);
        // The reach register is printed in octal.
        const char* end = f[5].data() + f[5].size();
        auto [ptr, ec] = std::from_chars(f[5].data(), end, src.reach, 8);
        if (ec != std::errc{} || ptr != end)
            return Error{EINVAL,
                         "chronyc -c sources: " + src.address + ": expected an octal reach, got " + shown(f[5])};
        // A source never heard from has last rx 2^32-1 ("-" in the table view).
        src.last_rx = last_rx >= 0xffffffffull ? -1 : static_cast<long>(last_rx);
        out.push_back(std::move(src));
    }
    return out;
}

std::string_view state_text(char state) {
    switch (state) {
        case '*':
            return "selected";
        case '+':
            return "combined";
        case '-':
            return "not combined";
        case '?':
            return "unreachable";
        case 'x':
            return "falseticker";
        case '~':
            return "too variable";
    }
    return "unknown state";
}

std::string format_offset(double seconds) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%+.6fs", seconds);
    return buf;
}

Verdict judge(const Tracking& tracking, const std::vector<Source>& sources, std::chrono::milliseconds max_offset) {
    const Source* selected = nullptr;
    for (const auto& s : sources)
        if (s.state == '*') selected = &s;
    if (!selected) {
        std::string why = "no selected source";
        if (sources.empty()) return {false, why + ": chronyd has no sources"};
        why += ":";
        for (std::size_t i = 0; i < sources.size(); ++i) {
            const auto& s = sources[i];
            why += (i ? ", " : " ") + s.address + " " + std::string(state_text(s.state));
            if (s.state == '?') why += " (reach " + std::to_string(s.reach) + ")";
        }
        return {false, why};
    }
    if (tracking.leap_status != "Normal") return {false, "leap status is " + tracking.leap_status};
    if (tracking.stratum <= 0 || tracking.stratum >= 16)
        return {false, "stratum " + std::to_string(tracking.stratum) + " is not below 16"};
    const double limit = static_cast<double>(max_offset.count()) / 1000.0;
    if (std::fabs(tracking.system_time) >= limit)
        return {false, "offset " + format_offset(tracking.system_time) + " is not below max_offset " +
                           std::to_string(max_offset.count()) + "ms"};
    return {true, {}};
}

bool is_host_name(std::string_view text) {
    if (text.empty() || text.size() > 253) return false;
    if (text.back() == '.') text.remove_suffix(1);  // fully qualified
    if (text.empty()) return false;
    for (auto label : split(text, '.')) {
        if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
        for (char c : label)
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-')) return false;
    }
    return true;
}

bool is_address(std::string_view text) {
    if (text.empty() || text.size() > 45) return false;
    std::string s(text);
    unsigned char buf[16];
    return ::inet_pton(AF_INET, s.c_str(), buf) == 1 || ::inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

bool is_subnet(std::string_view text) {
    auto slash = text.find('/');
    if (slash == std::string_view::npos) return is_address(text);
    auto address = text.substr(0, slash);
    auto prefix = text.substr(slash + 1);
    if (!is_address(address) || prefix.empty() || prefix.size() > 3) return false;
    int bits = -1;
    auto [ptr, ec] = std::from_chars(prefix.data(), prefix.data() + prefix.size(), bits);
    if (ec != std::errc{} || ptr != prefix.data() + prefix.size()) return false;
    const int max = address.find(':') == std::string_view::npos ? 32 : 128;
    return bits >= 0 && bits <= max;
}

bool is_zone_name(std::string_view text) {
    if (text.empty() || text.size() > 255 || text.front() == '/' || text.back() == '/') return false;
    for (auto part : split(text, '/')) {
        if (part.empty() || part == "." || part == "..") return false;
        for (char c : part)
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '+' ||
                  c == '-'))
                return false;
    }
    return true;
}

}  // namespace sanagent::agent::chrony
