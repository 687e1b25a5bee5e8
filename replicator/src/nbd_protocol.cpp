#include "sanagent/replicator/nbd_protocol.h"

namespace sanagent::replicator::nbd {

namespace {

template <typename T>
T load_be(const std::uint8_t* p) {
    T v = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) v = static_cast<T>((v << 8) | p[i]);
    return v;
}

template <typename T>
void store_be(std::uint8_t* p, T v) {
    for (std::size_t i = sizeof(T); i-- > 0;) {
        p[i] = static_cast<std::uint8_t>(v & 0xff);
        v = static_cast<T>(v >> 8);
    }
}

}  // namespace

Result<Request> decode_request(std::span<const std::uint8_t, kRequestSize> bytes) {
    const std::uint8_t* p = bytes.data();
    if (load_be<std::uint32_t>(p) != kRequestMagic) return Error{EBADMSG, "NBD request: bad magic"};
    Request r;
    r.flags = load_be<std::uint16_t>(p + 4);
    r.type = static_cast<CommandType>(load_be<std::uint16_t>(p + 6));
    r.handle = load_be<std::uint64_t>(p + 8);
    r.offset = load_be<std::uint64_t>(p + 16);
    r.length = load_be<std::uint32_t>(p + 24);
    return r;
}

std::array<std::uint8_t, kRequestSize> encode_request(const Request& r) {
    std::array<std::uint8_t, kRequestSize> out{};
    store_be<std::uint32_t>(out.data(), kRequestMagic);
    store_be<std::uint16_t>(out.data() + 4, r.flags);
    store_be<std::uint16_t>(out.data() + 6, static_cast<std::uint16_t>(r.type));
    store_be<std::uint64_t>(out.data() + 8, r.handle);
    store_be<std::uint64_t>(out.data() + 16, r.offset);
    store_be<std::uint32_t>(out.data() + 24, r.length);
    return out;
}

std::array<std::uint8_t, kSimpleReplySize> encode_simple_reply(std::uint32_t error, std::uint64_t handle) {
    std::array<std::uint8_t, kSimpleReplySize> out{};
    store_be<std::uint32_t>(out.data(), kSimpleReplyMagic);
    store_be<std::uint32_t>(out.data() + 4, error);
    store_be<std::uint64_t>(out.data() + 8, handle);
    return out;
}

}  // namespace sanagent::replicator::nbd
