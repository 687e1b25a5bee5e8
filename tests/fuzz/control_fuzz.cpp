// libFuzzer target: arbitrary bytes as one control request line.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "sanagent/agent/control.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace sanagent::agent;
    auto request = parse_request(std::string_view(reinterpret_cast<const char*>(data), size));
    if (request) {
        // What parses must encode back to something that parses the same.
        auto line = encode_request(*request);
        auto again = parse_request(std::string_view(line).substr(0, line.size() - 1));
        if (!again || again->kind != request->kind) std::abort();
    } else {
        (void)error_reply(request.error().message);
    }
    return 0;
}
