// The NBD transmission-phase wire format (NetworkBlockDevice/nbd doc/proto.md),
// as pure encode/decode over byte spans: no sockets, so unit tests and fuzzers
// call it directly. All integers are big-endian on the wire.
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "sanagent/result.h"

namespace sanagent::replicator::nbd {

inline constexpr std::uint32_t kRequestMagic = 0x25609513;
inline constexpr std::uint32_t kSimpleReplyMagic = 0x67446698;
inline constexpr std::size_t kRequestSize = 28;
inline constexpr std::size_t kSimpleReplySize = 16;

enum class CommandType : std::uint16_t {
    Read = 0,
    Write = 1,
    Disconnect = 2,
    Flush = 3,
    Trim = 4,
    WriteZeroes = 6,
};

inline constexpr std::uint16_t kCmdFlagFua = 1 << 0;
inline constexpr std::uint16_t kCmdFlagNoHole = 1 << 1;

struct Request {
    std::uint16_t flags = 0;
    CommandType type = CommandType::Read;
    std::uint64_t handle = 0;  // opaque cookie, echoed in the reply
    std::uint64_t offset = 0;
    std::uint32_t length = 0;
};

// Decodes one 28-byte request header; EBADMSG on a wrong magic.
Result<Request> decode_request(std::span<const std::uint8_t, kRequestSize> bytes);
std::array<std::uint8_t, kRequestSize> encode_request(const Request& request);

// A simple reply header; payload (for READ) follows it on the wire.
std::array<std::uint8_t, kSimpleReplySize> encode_simple_reply(std::uint32_t error, std::uint64_t handle);

}  // namespace sanagent::replicator::nbd
