// The seed corpus of replicator_peer_fuzz, as code: every message type of the
// current protocol version, framed (header + body, what arrives on a socket)
// and as a bare body (what the body decoders see), with fixed values so the
// files are the same bytes every time. build/tests/replicator_peer_seeds DIR
// writes them (into tests/fuzz/corpus/replicator_peer); a unit test fails
// when the committed files differ, e.g. after a protocol version bump.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "sanagent/replicator/peer_protocol.h"

namespace sanrep_fuzz {

inline std::map<std::string, std::vector<std::uint8_t>> peer_seeds() {
    using namespace sanagent::replicator;
    using namespace sanagent::replicator::peer;
    std::map<std::string, std::vector<std::uint8_t>> out;
    auto add = [&](const std::string& name, Type type, std::uint16_t flags, std::uint64_t seq,
                   const std::vector<std::uint8_t>& body) {
        auto h = encode_header(type, flags, seq, body);
        std::vector<std::uint8_t> framed(h.begin(), h.end());
        framed.insert(framed.end(), body.begin(), body.end());
        out["msg-" + name] = framed;
        out["body-" + name] = body;
    };
    Hello hello;
    hello.primary = true;
    hello.consistent = true;
    for (std::size_t i = 0; i < hello.volume_id.size(); ++i) hello.volume_id[i] = static_cast<std::uint8_t>(i + 1);
    hello.volume = "vol1";
    hello.size = 32ull << 20;
    hello.granularity = 64 * 1024;
    hello.gens = {0x1111, 0x2222, {0x3333, 0}};
    hello.node = "node-a";
    add("hello-primary", Type::Hello, 0, 0, encode_hello(hello));
    Hello blank;
    blank.volume = "vol1";
    blank.size = 32ull << 20;
    blank.granularity = 64 * 1024;
    blank.node = "node-b";
    blank.active = {{0, 4ull << 20}, {12ull << 20, 4ull << 20}};  // an old primary's activity log
    add("hello-blank-secondary", Type::Hello, 0, 0, encode_hello(blank));
    AuthChallenge auth;
    auth.nonce.fill(0xa5);
    auth.volume = "vol1";
    add("auth-challenge", Type::Auth, 0, 0, encode_auth_challenge(auth));
    add("auth-reply", Type::Auth, 0, 0, std::vector<std::uint8_t>(kAuthNonceSize, 0x3c));
    add("auth-proof", Type::AuthProof, 0, 1, std::vector<std::uint8_t>(kAuthNonceSize, 0x5a));
    add("decision-bitmap", Type::Decision, 0, 1, encode_decision(SyncDecision::BitmapFromPrimary));
    const auto prefix = encode_write_prefix(8192);
    std::vector<std::uint8_t> write(prefix.begin(), prefix.end());
    write.resize(8 + 4096, 0xee);
    add("write-fua", Type::Write, kFlagFua, 7, write);
    add("zero-may-punch", Type::Zero, kFlagMayPunch, 8, encode_range({65536, 131072}));
    add("trim", Type::Trim, 0, 9, encode_range({0, 4096}));
    add("flush", Type::Flush, 0, 10, {});
    add("ack", Type::Ack, 0, 7, encode_ack(0));
    add("ack-eio", Type::Ack, 0, 8, encode_ack(5));
    add("resync-done", Type::ResyncDone, 0, 11, encode_resync_done({hello.volume_id, hello.gens}));
    add("refuse", Type::Refuse, 0, 0, encode_refuse("another primary (node-a) is connected"));
    add("verify", Type::Verify, 0, 12, encode_range({1 << 20, 1 << 20}));
    add("digest", Type::Digest, 0, 12, encode_digest({0, 0xdeadbeef}));
    return out;
}

}  // namespace sanrep_fuzz
