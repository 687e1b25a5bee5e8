// Peer authentication: the exchange over a socketpair with the same and with
// different keys, and the key file's ownership, mode and size checks.
#include "sanagent/replicator/peer_auth.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <boost/test/unit_test.hpp>
#include <fstream>
#include <future>

#include "sanagent/replicator/peer_io.h"
#include "sanagent/replicator/peer_protocol.h"

using namespace sanagent::replicator;

namespace {

std::vector<std::uint8_t> bytes(const std::string& s) {
    return {s.begin(), s.end()};
}

// Runs both halves on a socketpair: {primary's status, secondary's status}.
std::pair<sanagent::Status, sanagent::Status> exchange(const std::string& kp, const std::string& ks,
                                                       const std::string& vp = "vol", const std::string& vs = "vol") {
    int sv[2];
    BOOST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    auto secondary = std::async(std::launch::async, [&] { return authenticate_secondary(sv[1], bytes(ks), vs); });
    auto p = authenticate_primary(sv[0], bytes(kp), vp);
    ::shutdown(sv[0], SHUT_RDWR);  // a failed primary must not leave the other side waiting
    auto s = secondary.get();
    ::close(sv[0]);
    ::close(sv[1]);
    return {p, s};
}

struct KeyFile {
    std::string path = "/tmp/sanrepd-psk-" + std::to_string(::getpid());
    KeyFile(const std::string& content, mode_t mode) {
        std::ofstream(path) << content;
        ::chmod(path.c_str(), mode);
    }
    ~KeyFile() { ::unlink(path.c_str()); }
};

}  // namespace

BOOST_AUTO_TEST_CASE(same_key_authenticates_both_ways) {
    auto [p, s] = exchange("0123456789abcdef-key", "0123456789abcdef-key");
    BOOST_TEST(p.ok(), (p.ok() ? "" : p.error().message));
    BOOST_TEST(s.ok(), (s.ok() ? "" : s.error().message));
}

BOOST_AUTO_TEST_CASE(wrong_key_or_volume_is_refused_on_both_sides) {
    for (auto [p, s] : {exchange("0123456789abcdef-key", "0123456789abcdef-kez"),
                        exchange("0123456789abcdef-key", "0123456789abcdef-key", "vol", "other")}) {
        BOOST_TEST_REQUIRE(!p.ok());
        BOOST_TEST(p.error().code == EPERM);
        BOOST_TEST(p.error().message.find("authentication failed") != std::string::npos, p.error().message);
        BOOST_TEST_REQUIRE(!s.ok());
        BOOST_TEST(s.error().code == EPERM, s.error().message);
    }
}

// Whatever answers on the peer's address can REFUSE before proving anything:
// its text reaches the status and the log, so it comes back sanitised and
// labelled as unauthenticated.
BOOST_AUTO_TEST_CASE(a_refusal_before_authentication_is_sanitised_and_labelled) {
    int sv[2];
    BOOST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    auto impostor = std::async(std::launch::async, [&] {
        std::array<std::uint8_t, peer::kHeaderSize> hb;
        std::vector<std::uint8_t> body;
        // The primary's AUTH: read and ignored, then a REFUSE with control bytes.
        if (::recv(sv[1], hb.data(), hb.size(), MSG_WAITALL) != static_cast<ssize_t>(hb.size())) return;
        auto h = peer::decode_header(hb);
        if (!h) return;
        body.resize(h->length);
        (void)::recv(sv[1], body.data(), body.size(), MSG_WAITALL);
        const std::string text = "go \x1b[2Jaway\xff";
        (void)peer::send(sv[1], peer::Type::Refuse, 0, 0, std::vector<std::uint8_t>(text.begin(), text.end()));
    });
    auto p = authenticate_primary(sv[0], bytes("0123456789abcdef-key"), "vol");
    impostor.get();
    ::close(sv[0]);
    ::close(sv[1]);
    BOOST_TEST_REQUIRE(!p.ok());
    BOOST_TEST(p.error().code == EPERM);
    BOOST_TEST(p.error().message == "refused before authentication: go ?[2Jaway?", p.error().message);
}

// Whoever can reach the port gets no MAC to guess the key from offline:
// the secondary answers an AUTH with its nonce alone, and a wrong proof
// with REFUSE, never with its own proof.
BOOST_AUTO_TEST_CASE(an_unauthenticated_peer_gets_no_mac) {
    int sv[2];
    BOOST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    auto secondary =
        std::async(std::launch::async, [&] { return authenticate_secondary(sv[1], bytes("0123456789abcdef-key"), "vol"); });
    peer::AuthChallenge challenge;
    challenge.nonce.fill(7);
    challenge.volume = "vol";
    BOOST_TEST_REQUIRE(peer::send(sv[0], peer::Type::Auth, 0, 0, peer::encode_auth_challenge(challenge)).ok());
    auto reply = peer::receive(sv[0]);
    BOOST_TEST_REQUIRE(reply.ok());
    BOOST_TEST(int(reply->header.type) == int(peer::Type::Auth));
    BOOST_TEST(reply->body.size() == peer::kAuthNonceSize);  // a nonce, no MAC
    BOOST_TEST_REQUIRE(
        peer::send(sv[0], peer::Type::AuthProof, 0, 0, std::vector<std::uint8_t>(sizeof(Mac), 0x11)).ok());
    auto answer = peer::receive(sv[0]);
    BOOST_TEST_REQUIRE(answer.ok());
    BOOST_TEST(int(answer->header.type) == int(peer::Type::Refuse));
    auto s = secondary.get();
    BOOST_TEST(!s.ok());
    ::close(sv[0]);
    ::close(sv[1]);
}

// The primary checks the secondary's proof too: whatever answers on the
// address it dials, without the key, gets REFUSE and no HELLO.
BOOST_AUTO_TEST_CASE(a_secondary_without_the_key_is_refused_by_the_primary) {
    int sv[2];
    BOOST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    auto impostor = std::async(std::launch::async, [&] {
        auto challenge = peer::receive(sv[1]);
        if (!challenge.ok()) return -1;
        (void)peer::send(sv[1], peer::Type::Auth, 0, 0, std::vector<std::uint8_t>(peer::kAuthNonceSize, 0x22));
        auto proof = peer::receive(sv[1]);  // the primary's: it proves first
        if (!proof.ok() || proof->header.type != peer::Type::AuthProof) return -2;
        (void)peer::send(sv[1], peer::Type::AuthProof, 0, 0, std::vector<std::uint8_t>(sizeof(Mac), 0x33));
        auto answer = peer::receive(sv[1]);
        return answer.ok() ? static_cast<int>(answer->header.type) : -3;
    });
    auto p = authenticate_primary(sv[0], bytes("0123456789abcdef-key"), "vol");
    BOOST_TEST_REQUIRE(!p.ok());
    BOOST_TEST(p.error().code == EPERM);
    BOOST_TEST(p.error().message.find("does not hold our key") != std::string::npos, p.error().message);
    BOOST_TEST(impostor.get() == static_cast<int>(peer::Type::Refuse));
    ::close(sv[0]);
    ::close(sv[1]);
}

BOOST_AUTO_TEST_CASE(macs_depend_on_every_input) {
    auto k = bytes("0123456789abcdef"), n1 = bytes("nonce-one"), n2 = bytes("nonce-two");
    auto base = auth_mac(k, "sanrepd-p", "vol", n1, n2);
    BOOST_TEST((base == auth_mac(k, "sanrepd-p", "vol", n1, n2)));
    BOOST_TEST((base != auth_mac(k, "sanrepd-s", "vol", n1, n2)));
    BOOST_TEST((base != auth_mac(k, "sanrepd-p", "vo", n1, n2)));
    BOOST_TEST((base != auth_mac(k, "sanrepd-p", "vol", n2, n1)));
    BOOST_TEST((base != auth_mac(bytes("0123456789abcdeg"), "sanrepd-p", "vol", n1, n2)));
}

BOOST_AUTO_TEST_CASE(key_file_must_be_private_and_long_enough) {
    {
        KeyFile f("0123456789abcdef0123\n", 0600);
        auto k = load_psk(f.path);
        BOOST_TEST_REQUIRE(k.ok(), (k.ok() ? "" : k.error().message));
        BOOST_TEST(k->size() == 20u);  // the newline is not part of the key
    }
    {
        KeyFile f("0123456789abcdef0123\n", 0640);
        auto k = load_psk(f.path);
        BOOST_TEST_REQUIRE(!k.ok());
        BOOST_TEST(k.error().message.find("chmod 0600") != std::string::npos, k.error().message);
    }
    {
        KeyFile f("short\n", 0600);
        BOOST_TEST(!load_psk(f.path).ok());
    }
    BOOST_TEST(!load_psk("/nonexistent/psk").ok());
}

BOOST_AUTO_TEST_CASE(secondary_refuses_an_unexpected_header_before_reading_a_body) {
    // A header announcing a 32 MiB AUTH, or a HELLO, with no body behind it:
    // refused at once from the header alone (reading the body would wait for
    // bytes that never come; the receive timeout only bounds a regression).
    for (auto type : {sanagent::replicator::peer::Type::Auth, sanagent::replicator::peer::Type::Hello}) {
        int sv[2];
        BOOST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
        timeval tv{2, 0};
        ::setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        std::vector<std::uint8_t> fake_body(type == sanagent::replicator::peer::Type::Auth ? 32u << 20 : 32);
        auto h = sanagent::replicator::peer::encode_header(type, 0, 0, fake_body);
        BOOST_REQUIRE(::write(sv[0], h.data(), h.size()) == static_cast<ssize_t>(h.size()));
        auto st = authenticate_secondary(sv[1], bytes("0123456789abcdef-key"), "vol");
        BOOST_TEST_REQUIRE(!st.ok());
        BOOST_TEST(st.error().code == EPERM, st.error().message);
        ::close(sv[0]);
        ::close(sv[1]);
    }
}
