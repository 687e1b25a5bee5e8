// The peer protocol between a primary and a secondary replica over TCP, as
// pure encode/decode over byte spans (docs/replicator.md has the tables).
//
// Every message is a 24-byte little-endian header then a body:
//   u32 magic "SRP2" | u16 type | u16 flags | u64 seq | u32 body length |
//   u32 crc32c(header bytes 4..20, then the body)
// seq numbers the sender's messages; an ACK carries the seq it acknowledges.
// The version is checked in HELLO; a peer of version 5 or older frames its
// messages with "SRP1" and a body-only CRC, refused from its first header.
// (CRC32C is not a MAC: the key authenticates the peer at the start, not
// each message.)
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "sanagent/replicator/generations.h"
#include "sanagent/result.h"

namespace sanagent::replicator::peer {

inline constexpr std::uint32_t kMagic = 0x32505253;     // "SRP2" read as little-endian bytes
inline constexpr std::uint32_t kOldMagic = 0x31505253;  // "SRP1": protocol version 5 and older
// 2: VERIFY / DIGEST (online verify), AUTH / AUTH_PROOF (pre-shared key); the secondary orders overlapping writes
// itself (async mode no longer holds the primary's range lock until the ack).
// 3: HELLO carries the node name.
// 4: AUTH (P->S) names the volume after the nonce: one port serves several volumes, and the secondary must know which
// before the name enters the HMAC.
// 5: HELLO carries the sender's active activity-log extents: an old primary that comes back as secondary has them
// resynced from the new primary.
inline constexpr std::uint16_t kVersion = 6;
inline constexpr std::size_t kHeaderSize = 24;
inline constexpr std::uint32_t kMaxBody = (32u << 20) + 64;  // one NBD-sized write plus its framing
inline constexpr std::size_t kMaxVolumeName = 128;

enum class Type : std::uint16_t {
    Hello = 1,       // both ways, first: who I am and what I hold
    Decision = 2,    // primary -> secondary: the SyncDecision, acked or refused
    Write = 3,       // u64 offset + data
    Zero = 4,        // u64 offset + u64 length
    Trim = 5,        // u64 offset + u64 length
    Flush = 6,       // empty: make every acked write durable
    Ack = 7,         // i32 errno (0 = done); header seq = the acked message
    ResyncDone = 8,  // the primary's generations and volume id: the target is now consistent
    Refuse = 9,      // a reason; the sender closes after it
    Verify = 10,     // primary -> secondary: u64 offset + u64 length, answered by DIGEST
    Digest = 11,     // i32 errno + u32 crc32c of the range; header seq = the VERIFY
    Auth = 12,       // before HELLO: a nonce and the volume (P->S), a nonce (S->P); peer_auth.h
    AuthProof = 13,  // an HMAC: the primary's first, then the secondary's
};

inline constexpr std::uint16_t kFlagFua = 1 << 0;       // durable before the ack
inline constexpr std::uint16_t kFlagResync = 1 << 1;    // a resync copy, not an application write
inline constexpr std::uint16_t kFlagMayPunch = 1 << 2;  // Zero may deallocate

struct Header {
    Type type = Type::Hello;
    std::uint16_t flags = 0;
    std::uint64_t seq = 0;
    std::uint32_t length = 0;
    std::uint32_t crc = 0;
};

using VolumeId = std::array<std::uint8_t, 16>;

struct Range {
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
};

// At most this many activity ranges in a HELLO; more are sent as one range
// covering them all (bounded_ranges()).
inline constexpr std::size_t kMaxHelloRanges = 128;
// Any handshake message (HELLO with its names and ranges, DECISION, ACK,
// REFUSE) fits: a larger one is refused before its body is read.
inline constexpr std::uint32_t kMaxHandshakeBody = 4096;

struct Hello {
    std::uint16_t version = kVersion;
    bool primary = false;
    bool consistent = false;
    VolumeId volume_id{};
    std::string volume;
    std::uint64_t size = 0;
    std::uint32_t granularity = 0;
    Generations gens;
    // The sender's node name: `resolve --keep NODE` accepts only this node's
    // or its peer's name, so a typo cannot discard a replica.
    std::string node;
    // The sender's activity log: extents it wrote while primary that may not
    // be on the other replica. A secondary's are resynced from the primary.
    std::vector<Range> active;
};

// `ranges` as at most `max` ranges: past that, one range from the first
// offset to the last end (a superset: it only costs a larger resync).
std::vector<Range> bounded_ranges(const std::vector<std::pair<std::uint64_t, std::uint64_t>>& ranges,
                                  std::size_t max = kMaxHelloRanges);

// The primary's first message when a key is configured: its nonce and the
// volume it wants (version 4; version 3 sent the nonce alone).
inline constexpr std::size_t kAuthNonceSize = 32;
inline constexpr std::size_t kMinAuthChallenge = kAuthNonceSize + 2;
inline constexpr std::size_t kMaxAuthChallenge = kMinAuthChallenge + kMaxVolumeName;
struct AuthChallenge {
    std::array<std::uint8_t, kAuthNonceSize> nonce{};
    std::string volume;
};

struct ResyncDone {
    VolumeId volume_id{};
    Generations gens;
};

std::array<std::uint8_t, kHeaderSize> encode_header(Type type, std::uint16_t flags, std::uint64_t seq,
                                                    std::span<const std::uint8_t> body);
// Checks magic, known type and the length bound (EBADMSG / EMSGSIZE).
Result<Header> decode_header(std::span<const std::uint8_t> bytes);
// A peer of version 5 or older: its header has magic SRP1. It is answered
// with a REFUSE in its own framing (its CRC covers the body only), which it
// can read and show.
bool old_framing(std::span<const std::uint8_t> header);
std::vector<std::uint8_t> encode_old_refuse(const std::string& reason);
// EBADMSG when the CRC does not match the header's.
Status check_body(const Header& header, std::span<const std::uint8_t> body);
// The CRC32C a message's CRC continues from: over the header's type, flags,
// seq and length (bytes 4 to 20), so a flipped bit there (ZERO and TRIM
// differ in one, FUA is one) fails the check as one in the body does.
std::uint32_t crc_seed(Type type, std::uint16_t flags, std::uint64_t seq, std::uint32_t length);
inline std::uint32_t crc_seed(const Header& h) {
    return crc_seed(h.type, h.flags, h.seq, h.length);
}

std::vector<std::uint8_t> encode_hello(const Hello& hello);
Result<Hello> decode_hello(std::span<const std::uint8_t> body);
std::vector<std::uint8_t> encode_auth_challenge(const AuthChallenge& challenge);
Result<AuthChallenge> decode_auth_challenge(std::span<const std::uint8_t> body);
std::vector<std::uint8_t> encode_decision(SyncDecision decision);
Result<SyncDecision> decode_decision(std::span<const std::uint8_t> body);
// A Write body is the offset then the data: the caller sends the data from its
// own buffer (no copy), so only the 8-byte prefix is encoded here.
std::array<std::uint8_t, 8> encode_write_prefix(std::uint64_t offset);
Result<std::uint64_t> decode_write_prefix(std::span<const std::uint8_t> body);
std::vector<std::uint8_t> encode_range(const Range& range);
Result<Range> decode_range(std::span<const std::uint8_t> body);
std::vector<std::uint8_t> encode_ack(std::int32_t error);
Result<std::int32_t> decode_ack(std::span<const std::uint8_t> body);
struct Digest {
    std::int32_t error = 0;
    std::uint32_t crc = 0;
};
std::vector<std::uint8_t> encode_digest(const Digest& digest);
Result<Digest> decode_digest(std::span<const std::uint8_t> body);
std::vector<std::uint8_t> encode_resync_done(const ResyncDone& done);
Result<ResyncDone> decode_resync_done(std::span<const std::uint8_t> body);
inline constexpr std::size_t kMaxRefuse = 1024;  // bytes of a refusal's reason
std::vector<std::uint8_t> encode_refuse(const std::string& reason);
// Never fails: a reason is cut at kMaxRefuse and unprintable bytes become '?'
// (it may come from a peer that has not authenticated).
std::string decode_refuse(std::span<const std::uint8_t> body);

}  // namespace sanagent::replicator::peer
