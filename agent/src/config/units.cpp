#include "sanagent/agent/units.h"

#include <cstdio>

#include <cctype>
#include <limits>

namespace sanagent::agent {

namespace {

// Leading decimal digits as an unsigned value; nullopt-like failure on none or overflow.
bool take_number(std::string_view& text, std::uint64_t& out) {
    std::size_t i = 0;
    out = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
        auto digit = static_cast<std::uint64_t>(text[i] - '0');
        if (out > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) return false;
        out = out * 10 + digit;
        ++i;
    }
    if (i == 0) return false;
    text.remove_prefix(i);
    return true;
}

Error invalid(std::string_view text, std::string_view expected) {
    return Error{EINVAL, "\"" + std::string(text.substr(0, 64)) + "\" is not " + std::string(expected)};
}

}  // namespace

Result<std::uint64_t> parse_size(std::string_view text) {
    constexpr std::string_view expected = "a size like \"512M\" or \"10G\" (binary units K, M, G, T, P)";
    std::string_view rest = text;
    std::uint64_t n = 0;
    if (!take_number(rest, n)) return invalid(text, expected);
    int shift = 0;
    if (!rest.empty()) {
        switch (rest.front()) {
            case 'K':
                shift = 10;
                break;
            case 'M':
                shift = 20;
                break;
            case 'G':
                shift = 30;
                break;
            case 'T':
                shift = 40;
                break;
            case 'P':
                shift = 50;
                break;
            case 'B':
                shift = 0;
                break;
            default:
                return invalid(text, expected);
        }
        if (rest.front() != 'B') {
            rest.remove_prefix(1);
            if (rest == "iB" || rest == "B") rest = {};
        } else {
            rest.remove_prefix(1);
        }
        if (!rest.empty()) return invalid(text, expected);
    }
    if (shift && n > (std::numeric_limits<std::uint64_t>::max() >> shift))
        return Error{ERANGE, "\"" + std::string(text) + "\" is too large"};
    return n << shift;
}

Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
    constexpr std::string_view expected = "a duration like \"100ms\", \"5s\", \"2m\" or \"1h\"";
    std::string_view rest = text;
    std::uint64_t n = 0;
    if (!take_number(rest, n)) return invalid(text, expected);
    std::uint64_t scale = 0;
    if (rest == "ms")
        scale = 1;
    else if (rest == "s")
        scale = 1000;
    else if (rest == "m" || rest == "min")
        scale = 60'000;
    else if (rest == "h")
        scale = 3'600'000;
    else
        return invalid(text, expected);
    constexpr auto limit = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    if (n > limit / scale) return Error{ERANGE, "\"" + std::string(text) + "\" is too long"};
    return std::chrono::milliseconds(static_cast<std::int64_t>(n * scale));
}

Result<int> parse_percent(std::string_view text) {
    std::string_view rest = text;
    std::uint64_t n = 0;
    if (!take_number(rest, n) || rest != "%" || n > 100) return invalid(text, "a percentage from \"0%\" to \"100%\"");
    return static_cast<int>(n);
}

std::string format_size(std::uint64_t bytes) {
    const char units[] = {'P', 'T', 'G', 'M', 'K'};
    const int shifts[] = {50, 40, 30, 20, 10};
    for (int i = 0; i < 5; ++i) {
        std::uint64_t unit = std::uint64_t{1} << shifts[i];
        if (bytes != 0 && bytes % unit == 0) return std::to_string(bytes / unit) + units[i];
    }
    return std::to_string(bytes);
}

std::string format_duration(std::chrono::milliseconds duration) {
    auto ms = duration.count();
    if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
    if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
    if (ms != 0 && ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
    return std::to_string(ms) + "ms";
}

bool is_safe_name(std::string_view name) {
    if (name.empty() || name.size() > kMaxNameLength) return false;
    auto lower_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
    if (!lower_or_digit(name.front())) return false;
    for (char c : name)
        if (!lower_or_digit(c) && c != '.' && c != '-') return false;
    return true;
}

std::string human_size(std::uint64_t bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = static_cast<double>(bytes);
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
    return buf;
}

}  // namespace sanagent::agent
