// The value syntaxes of the config: sizes, durations, percentages.
//
// Sizes use binary units (K = 1024 bytes, M = 1024 K, ...; "10G", "512M",
// "10GiB" alike); a bare integer is bytes. Durations need a unit ("100ms",
// "5s", "2m", "1h"). Percentages are whole numbers 0-100 with a "%" sign.
// All parsers are pure, reject overflow, fractions and stray characters, and
// say what they expected.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "sanagent/result.h"

namespace sanagent::agent {

Result<std::uint64_t> parse_size(std::string_view text);
Result<std::chrono::milliseconds> parse_duration(std::string_view text);
Result<int> parse_percent(std::string_view text);

// The shortest exact spelling: 10737418240 -> "10G", 1536 -> "1536" (bytes).
std::string format_size(std::uint64_t bytes);
// For people, rounded: 10737418240 -> "10.0 GiB", 512 -> "512.0 B".
std::string human_size(std::uint64_t bytes);
// 60000 -> "60s", 1500 -> "1500ms", 120000 -> "2m".
std::string format_duration(std::chrono::milliseconds duration);

// Names of objects and references: [a-z0-9][a-z0-9.-]*, at most 63 characters,
// so they are safe in paths, IQNs, LV and interface names alike. (Interface
// names are further bounded to 15 by the modules that make interfaces.)
constexpr std::size_t kMaxNameLength = 63;
bool is_safe_name(std::string_view name);

}  // namespace sanagent::agent
