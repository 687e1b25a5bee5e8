// libFuzzer target: arbitrary bytes as a config drop-in. The loader must
// report problems as diagnostics, never crash, hang or throw.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "sanagent/agent/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace sanagent::agent;
    Config config;
    Diagnostics diagnostics;
    merge_toml(config, std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.conf", diagnostics);
    LoadOptions options;
    validate_config(config, options, diagnostics);
    (void)render_config(config, true);
    (void)diagnostics.text();
    return 0;
}
