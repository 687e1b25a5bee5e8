// Peer authentication with a pre-shared key: an HMAC-SHA256 challenge and
// response each way, before HELLO, so that neither side tells an
// unauthenticated peer anything about its volume or accepts a write from it.
//
//   P -> S  AUTH        nonce_p (32 bytes) | u16 length | volume   (protocol 4)
//   S -> P  AUTH        nonce_s (32)                                (protocol 6)
//   P -> S  AUTH_PROOF  HMAC(key, "sanrepd-p" | volume | nonce_s | nonce_p)
//   S -> P  AUTH_PROOF  HMAC(key, "sanrepd-s" | volume | nonce_p | nonce_s)  (once P's is right)
//
// Fresh random nonces on both sides make a recorded exchange useless; the
// role label keeps one side's answer from being replayed as the other's.
// The primary proves first: anyone who can reach a secondary's port gets no
// MAC to guess a weak key from offline (only the address the primary dials
// could get the primary's). The key never travels. Compared in constant time.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "sanagent/replicator/peer_protocol.h"
#include "sanagent/result.h"

namespace sanagent::replicator {

using Mac = std::array<std::uint8_t, 32>;
using Nonce = std::array<std::uint8_t, 32>;

// The key file: owned by root (or the user sanrepd runs as), no group or
// other permission bits, at least 16 bytes (a trailing newline is dropped).
Result<std::vector<std::uint8_t>> load_psk(const std::string& path);

Mac auth_mac(std::span<const std::uint8_t> key, const std::string& label, const std::string& volume,
             std::span<const std::uint8_t> first, std::span<const std::uint8_t> second);

// Both ends of the exchange on a connected socket (its receive timeout bounds
// them). EPERM when the other side does not know the key.
Status authenticate_primary(int fd, std::span<const std::uint8_t> key, const std::string& volume);
Status authenticate_secondary(int fd, std::span<const std::uint8_t> key, const std::string& volume);
// The secondary's half once the primary's AUTH has been read (a listener that
// serves several volumes reads it to pick the volume): the MACs bind the
// volume the primary named.
Status authenticate_secondary(int fd, std::span<const std::uint8_t> key, const peer::AuthChallenge& challenge);

}  // namespace sanagent::replicator
