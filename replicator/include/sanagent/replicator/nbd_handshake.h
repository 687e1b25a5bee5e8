// The NBD newstyle fixed handshake and option haggling (NetworkBlockDevice/nbd
// doc/proto.md, "Newstyle negotiation"), as pure functions over byte spans.
//
// The server side is one function per step: the greeting it sends, the client
// flags it reads, then negotiate() turns one option into the bytes to answer and
// what to do next. No sockets here: unit tests and the fuzzer drive it directly.
// The client-side encoders exist for tests and the benchmark's own client.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "sanagent/result.h"

namespace sanagent::replicator::nbd {

inline constexpr std::uint64_t kNbdMagic = 0x4e42444d41474943ull;     // "NBDMAGIC"
inline constexpr std::uint64_t kOptionMagic = 0x49484156454f5054ull;  // "IHAVEOPT"
inline constexpr std::uint64_t kOptionReplyMagic = 0x3e889045565a9ull;
inline constexpr std::size_t kGreetingSize = 18;
inline constexpr std::size_t kOptionHeaderSize = 16;
inline constexpr std::size_t kOptionReplyHeaderSize = 20;
// Longest option payload we read: a name is at most 4096 bytes by the spec,
// plus the INFO/GO framing and a few info requests.
inline constexpr std::uint32_t kMaxOptionLength = 4096 + 64;

// Handshake flags (server) and client flags.
inline constexpr std::uint16_t kFlagFixedNewstyle = 1 << 0;
inline constexpr std::uint16_t kFlagNoZeroes = 1 << 1;

// Transmission flags.
inline constexpr std::uint16_t kFlagHasFlags = 1 << 0;
inline constexpr std::uint16_t kFlagReadOnly = 1 << 1;
inline constexpr std::uint16_t kFlagSendFlush = 1 << 2;
inline constexpr std::uint16_t kFlagSendFua = 1 << 3;
inline constexpr std::uint16_t kFlagSendTrim = 1 << 5;
inline constexpr std::uint16_t kFlagSendWriteZeroes = 1 << 6;
inline constexpr std::uint16_t kFlagCanMultiConn = 1 << 8;

enum Option : std::uint32_t {
    kOptExportName = 1,
    kOptAbort = 2,
    kOptList = 3,
    kOptStartTls = 5,
    kOptInfo = 6,
    kOptGo = 7,
    kOptStructuredReply = 8,
};

enum ReplyType : std::uint32_t {
    kRepAck = 1,
    kRepServer = 2,
    kRepInfo = 3,
    kRepErrUnsup = 0x80000001u,
    kRepErrPolicy = 0x80000002u,
    kRepErrInvalid = 0x80000003u,
    kRepErrUnknown = 0x80000006u,
    kRepErrTlsReqd = 0x80000005u,
    kRepErrTooBig = 0x80000009u,
};

enum InfoType : std::uint16_t {
    kInfoExport = 0,
    kInfoName = 1,
    kInfoDescription = 2,
    kInfoBlockSize = 3,
};

// What the server offers: one export per NBD socket.
struct ExportInfo {
    std::string name;  // "" is accepted as the default export too
    std::uint64_t size = 0;
    std::uint16_t transmission_flags = 0;
    std::uint32_t min_block = 512;
    std::uint32_t preferred_block = 4096;
    std::uint32_t max_block = 32u << 20;
};

struct OptionHeader {
    std::uint32_t option = 0;
    std::uint32_t length = 0;
};

struct InfoRequest {
    std::string name;
    std::vector<std::uint16_t> infos;
};

enum class Next {
    Continue,  // read the next option
    Transmit,  // option haggling done: enter the transmission phase
    Close,     // the client aborted, or spoke nonsense: close the connection
    StartTls,  // NBD_OPT_STARTTLS acknowledged: the TLS handshake comes next
};

// The connection's TLS mode (the spec's names): NOTLS on the UNIX socket and
// where no credentials are configured; FORCEDTLS on TCP with credentials,
// where every option but STARTTLS and ABORT is refused until TLS is up.
enum class Tls {
    Off,       // NOTLS: STARTTLS is unsupported
    Required,  // FORCEDTLS, TLS not started yet
    Active,    // TLS is up: options are answered as in NOTLS, STARTTLS is invalid
};

struct Outcome {
    std::vector<std::uint8_t> reply;  // bytes to send before acting on `next`
    Next next = Next::Continue;
};

std::vector<std::uint8_t> encode_greeting();
// The 4-byte client flags; EPROTO if the client is not fixed-newstyle or sets
// flags we do not know (the spec says to close then).
Result<std::uint32_t> decode_client_flags(std::span<const std::uint8_t> bytes);
// EBADMSG on a wrong magic, EMSGSIZE past kMaxOptionLength.
Result<OptionHeader> decode_option_header(std::span<const std::uint8_t> bytes);
Result<InfoRequest> decode_info_request(std::span<const std::uint8_t> data);

// One option's answer. `no_zeroes` is the client's NO_ZEROES flag (it shapes
// the reply to NBD_OPT_EXPORT_NAME). Options other than those the spec makes
// mandatory for a fixed-newstyle server get NBD_REP_ERR_UNSUP; `tls` as
// above.
Outcome negotiate(const ExportInfo& exp, bool no_zeroes, std::uint32_t option, std::span<const std::uint8_t> data,
                  Tls tls = Tls::Off);

std::vector<std::uint8_t> encode_option_reply(std::uint32_t option, std::uint32_t type,
                                              std::span<const std::uint8_t> data = {});

// Client side (tests, fuzzer seeds).
std::vector<std::uint8_t> encode_option(std::uint32_t option, std::span<const std::uint8_t> data = {});
std::vector<std::uint8_t> encode_info_request(const InfoRequest& request);
struct OptionReplyHeader {
    std::uint32_t option = 0;
    std::uint32_t type = 0;
    std::uint32_t length = 0;
};
Result<OptionReplyHeader> decode_option_reply_header(std::span<const std::uint8_t> bytes);

}  // namespace sanagent::replicator::nbd
