#include "sanagent/replicator/peer_protocol.h"

#include <boost/test/unit_test.hpp>

#include "sanagent/replicator/crc32c.h"

using namespace sanagent::replicator;
using namespace sanagent::replicator::peer;

BOOST_AUTO_TEST_SUITE(peer_protocol)

BOOST_AUTO_TEST_CASE(crc32c_known_value) {
    // The check value of CRC-32C (RFC 3720 appendix B.4 uses the same polynomial).
    std::string s = "123456789";
    BOOST_TEST(crc32c({reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}) == 0xe3069283u);
    // Chaining equals one pass.
    auto p = reinterpret_cast<const std::uint8_t*>(s.data());
    BOOST_TEST(crc32c({p + 4, 5}, crc32c({p, 4})) == 0xe3069283u);
}

BOOST_AUTO_TEST_CASE(header_round_trip_and_crc) {
    std::vector<std::uint8_t> body = {1, 2, 3, 4};
    auto h = encode_header(Type::Ack, 0, 42, body);
    auto d = decode_header(h);
    BOOST_TEST_REQUIRE(d.ok());
    BOOST_TEST((d->type == Type::Ack));
    BOOST_TEST(d->seq == 42u);
    BOOST_TEST(d->length == 4u);
    BOOST_TEST(check_body(*d, body).ok());
    body[0] ^= 1;
    BOOST_TEST(!check_body(*d, body).ok());
}

// The CRC covers the header's fields too: ZERO (4) and TRIM (5) differ in
// one bit and share a body, and FUA is one bit of the flags. A flipped bit
// in any of them fails the check, as one in the body does.
BOOST_AUTO_TEST_CASE(a_flipped_bit_in_the_header_fails_the_crc) {
    auto body = encode_range({1 << 20, 4096});
    const auto h = encode_header(Type::Zero, 0, 7, body);
    BOOST_TEST_REQUIRE(check_body(*decode_header(h), body).ok());
    for (std::size_t bit : {4 * 8, 6 * 8, 8 * 8 + 3}) {  // type ZERO -> TRIM, flag FUA, a seq bit
        auto bad = h;
        bad[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
        auto d = decode_header(bad);
        BOOST_TEST_REQUIRE(d.ok());
        BOOST_TEST(!check_body(*d, body).ok(), "bit " << bit);
    }
}

BOOST_AUTO_TEST_CASE(malformed_headers) {
    auto h = encode_header(Type::Flush, 0, 1, {});
    auto bad_magic = h;
    bad_magic[0] ^= 0xff;
    BOOST_TEST(!decode_header(bad_magic).ok());
    // A peer of version 5 or older: told apart from noise, with what to do.
    auto old = h;
    old[3] = '1';  // "SRP1"
    auto r_old = decode_header(old);
    BOOST_TEST_REQUIRE(!r_old.ok());
    BOOST_TEST(r_old.error().message.find("upgrade both nodes") != std::string::npos, r_old.error().message);
    BOOST_TEST(old_framing(old));
    BOOST_TEST(!old_framing(h));
    // Its answer, in its own framing: SRP1, a CRC over the body alone.
    auto refusal = encode_old_refuse("protocol version 6 needed");
    BOOST_TEST_REQUIRE(refusal.size() > kHeaderSize);
    BOOST_TEST(old_framing(refusal));
    std::span<const std::uint8_t> body(refusal.data() + kHeaderSize, refusal.size() - kHeaderSize);
    std::uint32_t crc = refusal[20] | (refusal[21] << 8) | (refusal[22] << 16) | (std::uint32_t(refusal[23]) << 24);
    BOOST_TEST(crc == crc32c(body));
    BOOST_TEST(refusal[4] == static_cast<std::uint8_t>(Type::Refuse));
    BOOST_TEST(decode_refuse(body) == "protocol version 6 needed");
    auto bad_type = h;
    bad_type[4] = 77;
    BOOST_TEST(!decode_header(bad_type).ok());
    auto huge = h;
    huge[19] = 0x7f;  // length far past kMaxBody
    auto r = decode_header(huge);
    BOOST_TEST_REQUIRE(!r.ok());
    BOOST_TEST(r.error().code == EMSGSIZE);
    BOOST_TEST(!decode_header(std::span(h).first(10)).ok());
}

BOOST_AUTO_TEST_CASE(hello_round_trip) {
    Hello h;
    h.primary = true;
    h.consistent = true;
    h.volume_id[3] = 9;
    h.volume = "vol1";
    h.size = 1ull << 33;
    h.granularity = 65536;
    h.gens = {11, 22, {33, 44}};
    h.node = "node-a";
    h.active = {{0, 4u << 20}, {1ull << 32, 4u << 20}};
    auto body = encode_hello(h);
    auto d = decode_hello(body);
    BOOST_TEST_REQUIRE(d.ok());
    BOOST_TEST_REQUIRE(d->active.size() == 2u);
    BOOST_TEST(d->active[1].offset == (1ull << 32));
    BOOST_TEST(d->active[1].length == (4u << 20));
    BOOST_TEST(d->primary);
    BOOST_TEST(d->volume == "vol1");
    BOOST_TEST(d->size == h.size);
    BOOST_TEST((d->gens == h.gens));
    BOOST_TEST((d->volume_id == h.volume_id));
    BOOST_TEST(d->node == "node-a");
    // Every truncation and one extra byte are refused.
    for (std::size_t n = 0; n < body.size(); ++n) BOOST_TEST(!decode_hello(std::span(body).first(n)).ok());
    body.push_back(0);
    BOOST_TEST(!decode_hello(body).ok());
}

BOOST_AUTO_TEST_CASE(hello_version_and_name_limits) {
    Hello h;
    auto body = encode_hello(h);
    body[0] = kVersion + 1;  // a version we do not speak
    auto d = decode_hello(body);
    BOOST_TEST_REQUIRE(!d.ok());
    BOOST_TEST(d.error().code == EPROTO);
    body = encode_hello(h);
    body[2] = 2;  // "primary" must be 0 or 1 (found by the fuzzer: one encoding per message)
    BOOST_TEST(!decode_hello(body).ok());
    h.volume = std::string(kMaxVolumeName + 1, 'x');
    BOOST_TEST(!decode_hello(encode_hello(h)).ok());
    h.volume = "v";
    h.node = std::string(kMaxVolumeName + 1, 'n');
    BOOST_TEST(!decode_hello(encode_hello(h)).ok());
    h.node = "";  // a session is known by its primary's name
    BOOST_TEST(!decode_hello(encode_hello(h)).ok());
    // Names reach logs and the status JSON: bytes that are not printable
    // ASCII (or a space, or an escape sequence) are refused, not passed on.
    for (std::string bad : {"a\xff", "a b", "\x1b[2J", "a\n"}) {
        h.node = bad;
        BOOST_TEST(!decode_hello(encode_hello(h)).ok());
        h.node = "node-a";
        h.volume = bad;
        BOOST_TEST(!decode_hello(encode_hello(h)).ok());
        h.volume = "v";
    }
    BOOST_TEST(decode_hello(encode_hello(h)).ok());
}

BOOST_AUTO_TEST_CASE(hello_activity_ranges_are_bounded) {
    Hello h;
    h.node = "node-a";
    h.active = {{4096, 0}};  // empty
    BOOST_TEST(!decode_hello(encode_hello(h)).ok());
    h.active = {{~0ull - 10, 4096}};  // wraps
    BOOST_TEST(!decode_hello(encode_hello(h)).ok());
    h.active.assign(kMaxHelloRanges + 1, Range{0, 4096});
    BOOST_TEST(!decode_hello(encode_hello(h)).ok());
    h.active.assign(kMaxHelloRanges, Range{0, 4096});
    BOOST_TEST(decode_hello(encode_hello(h)).ok());

    // More ranges than a HELLO carries become one range over all of them.
    std::vector<std::pair<std::uint64_t, std::uint64_t>> many;
    for (std::uint64_t i = 0; i < 200; ++i) many.emplace_back((2 * i + 3) << 22, 4u << 20);
    auto one = bounded_ranges(many);
    BOOST_TEST_REQUIRE(one.size() == 1u);
    BOOST_TEST(one[0].offset == (3ull << 22));
    BOOST_TEST(one[0].offset + one[0].length == (401ull << 22) + (4u << 20));
    auto few = bounded_ranges({{0, 4096}, {8192, 4096}});
    BOOST_TEST(few.size() == 2u);
    BOOST_TEST(bounded_ranges({}).empty());
}

BOOST_AUTO_TEST_CASE(small_bodies) {
    BOOST_TEST(*decode_ack(encode_ack(-5)) == -5);
    auto dg = decode_digest(encode_digest({-3, 0xdeadbeef}));
    BOOST_TEST_REQUIRE(dg.ok());
    BOOST_TEST(dg->error == -3);
    BOOST_TEST(dg->crc == 0xdeadbeefu);
    BOOST_TEST(!decode_digest(encode_ack(0)).ok());
    BOOST_TEST(!decode_ack(std::vector<std::uint8_t>{1, 2}).ok());
    auto r = decode_range(encode_range({4096, 8192}));
    BOOST_TEST_REQUIRE(r.ok());
    BOOST_TEST(r->length == 8192u);
    BOOST_TEST(!decode_range(encode_range({~0ull, 2})).ok());  // wraps
    BOOST_TEST(!decode_range(std::vector<std::uint8_t>(15)).ok());
    BOOST_TEST((*decode_decision(encode_decision(SyncDecision::SplitBrain)) == SyncDecision::SplitBrain));
    BOOST_TEST(!decode_decision(std::vector<std::uint8_t>{99}).ok());
    BOOST_TEST(!decode_decision({}).ok());
    ResyncDone done{{}, {5, 0, {6, 7}}};
    auto rd = decode_resync_done(encode_resync_done(done));
    BOOST_TEST_REQUIRE(rd.ok());
    BOOST_TEST((rd->gens == done.gens));
    BOOST_TEST(!decode_resync_done(std::vector<std::uint8_t>(10)).ok());
    BOOST_TEST(decode_refuse(encode_refuse("split-brain")) == "split-brain");
    // From a peer that may not be authenticated: printable and bounded.
    const std::vector<std::uint8_t> raw = {'a', 0xff, '\n', 0x1b, 'b'};
    BOOST_TEST(decode_refuse(raw) == "a???b");
    BOOST_TEST(decode_refuse(std::vector<std::uint8_t>(5000, 'x')) == std::string(kMaxRefuse, 'x') + " [cut]");
    BOOST_TEST(!decode_write_prefix(std::vector<std::uint8_t>(7)).ok());
    BOOST_TEST(*decode_write_prefix(encode_write_prefix(123456)) == 123456u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_CASE(auth_challenge_names_the_volume) {
    AuthChallenge c;
    c.nonce.fill(0x5a);
    c.volume = "vol-7";
    auto body = encode_auth_challenge(c);
    BOOST_TEST(body.size() == kMinAuthChallenge + 5);
    auto d = decode_auth_challenge(body);
    BOOST_TEST_REQUIRE(d.ok());
    BOOST_TEST(d->volume == "vol-7");
    BOOST_TEST((d->nonce == c.nonce));
    // A version 3 AUTH (the nonce alone), any truncation, a trailing byte
    // and an over-long name are refused.
    for (std::size_t n = 0; n < body.size(); ++n) BOOST_TEST(!decode_auth_challenge(std::span(body).first(n)).ok());
    body.push_back(0);
    BOOST_TEST(!decode_auth_challenge(body).ok());
    c.volume.assign(kMaxVolumeName + 1, 'v');
    BOOST_TEST(!decode_auth_challenge(encode_auth_challenge(c)).ok());
    c.volume.assign(kMaxVolumeName, 'v');
    BOOST_TEST(encode_auth_challenge(c).size() == kMaxAuthChallenge);
}
