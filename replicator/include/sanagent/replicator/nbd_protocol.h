// The NBD transmission-phase wire format (NetworkBlockDevice/nbd doc/proto.md),
// as pure encode/decode over byte spans: no sockets, so unit tests and fuzzers
// call it directly. All integers are big-endian on the wire.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>

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

// Error values on the wire (the spec's fixed numbering, not the host's errno).
inline constexpr std::uint32_t kErrPerm = 1;
inline constexpr std::uint32_t kErrIo = 5;
inline constexpr std::uint32_t kErrNoMem = 12;
inline constexpr std::uint32_t kErrInval = 22;
inline constexpr std::uint32_t kErrNoSpc = 28;
inline constexpr std::uint32_t kErrOverflow = 75;
inline constexpr std::uint32_t kErrNotSup = 95;
inline constexpr std::uint32_t kErrShutdown = 108;

// The host errno mapped onto the spec's numbers (EIO for anything else).
std::uint32_t wire_error(int host_errno);

// What the server does with a decoded request header, before reading any
// payload: serve it, answer it with an error (after consuming a WRITE's
// payload), or close the connection because the stream can no longer be
// trusted (a payload too big to read is the only case: we cannot skip it
// without trusting its length).
enum class Verdict { Serve, ReplyError, Close };
struct RequestCheck {
    Verdict verdict = Verdict::Serve;
    std::uint32_t error = 0;  // wire error for ReplyError
    std::string why;          // for the log
};
RequestCheck check_request(const Request& request, std::uint64_t export_size, std::uint32_t max_payload);

// A simple reply header; payload (for READ) follows it on the wire.
std::array<std::uint8_t, kSimpleReplySize> encode_simple_reply(std::uint32_t error, std::uint64_t handle);

}  // namespace sanagent::replicator::nbd
