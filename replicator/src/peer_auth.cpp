#include "sanagent/replicator/peer_auth.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <sys/random.h>
#include <unistd.h>

#include <array>
#include <cstdlib>

#include "sanagent/fd.h"
#include "sanagent/replicator/net.h"
#include "sanagent/replicator/peer_io.h"
#include "sanagent/replicator/secret_file.h"

namespace sanagent::replicator {

namespace {

constexpr std::size_t kMinKey = 16;
constexpr std::size_t kMaxKey = 4096;

Result<Nonce> new_nonce() {
    Nonce n{};
    std::size_t got = 0;
    while (got < n.size()) {
        ssize_t r = ::getrandom(n.data() + got, n.size() - got, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            return last_errno("getrandom");
        }
        got += static_cast<std::size_t>(r);
    }
    return n;
}

bool same(const Mac& a, std::span<const std::uint8_t> b) {
    return b.size() == a.size() && gnutls_memcmp(a.data(), b.data(), a.size()) == 0;  // constant time
}

// The next message must be `type` with a body of exactly `size` bytes. The
// header is checked before any body is read: an unauthenticated peer cannot
// make us wait for (or allocate) a body we would refuse anyway. A REFUSE is
// read too, if its text is short.
Result<std::vector<std::uint8_t>> expect(int fd, peer::Type type, std::size_t size, const char* what) {
    constexpr std::size_t kMaxRefusal = 4096;
    std::array<std::uint8_t, peer::kHeaderSize> hb;
    if (auto st = read_full(fd, hb); !st) return st.error().context(std::string("waiting for ") + what);
    auto h = peer::decode_header(hb);
    if (!h) return h.error().context(std::string("waiting for ") + what);
    const bool refusal = h->type == peer::Type::Refuse && h->length <= kMaxRefusal;
    // size 0: a primary's AUTH, whose length depends on the volume name.
    const bool size_ok =
        size ? h->length == size : h->length >= peer::kMinAuthChallenge && h->length <= peer::kMaxAuthChallenge;
    if (!refusal && (h->type != type || !size_ok))
        return Error{EPERM, std::string("expected ") + what + ", got a message of type " +
                                std::to_string(static_cast<int>(h->type)) + " with " + std::to_string(h->length) +
                                " bytes: the peer does not authenticate (psk_file), or speaks another protocol "
                                "version (upgrade both nodes)"};
    std::vector<std::uint8_t> body(h->length);
    if (auto st = read_full(fd, body); !st) return st.error().context(std::string("reading ") + what);
    if (auto st = peer::check_body(*h, body); !st) return st.error();
    // Its text is shown in the status and logged: sanitised like any
    // REFUSE, and labelled, since nobody has proved who sent it.
    if (refusal) return Error{EPERM, "refused before authentication: " + peer::decode_refuse(body)};
    return body;
}

}  // namespace

Result<std::vector<std::uint8_t>> load_psk(const std::string& path) {
    auto key = read_secret_file(path, "key file", kMaxKey + 2);  // + a CR LF that is dropped
    if (!key) return key.error();
    while (!key->empty() && (key->back() == '\n' || key->back() == '\r')) key->pop_back();
    if (key->size() < kMinKey || key->size() > kMaxKey)
        return Error{EINVAL, "key file " + path + ": the key must be 16 to 4096 bytes (e.g. openssl rand -hex 32)"};
    return key;
}

Mac auth_mac(std::span<const std::uint8_t> key, const std::string& label, const std::string& volume,
             std::span<const std::uint8_t> first, std::span<const std::uint8_t> second) {
    // label | 0 | volume | 0 | first | second: the separators keep
    // ("ab", "c") and ("a", "bc") apart.
    std::vector<std::uint8_t> msg(label.begin(), label.end());
    msg.push_back(0);
    msg.insert(msg.end(), volume.begin(), volume.end());
    msg.push_back(0);
    msg.insert(msg.end(), first.begin(), first.end());
    msg.insert(msg.end(), second.begin(), second.end());
    Mac out{};
    // Only fails for an unknown algorithm; SHA-256 is always there.
    if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, key.data(), key.size(), msg.data(), msg.size(), out.data()) < 0)
        std::abort();
    return out;
}

Status authenticate_primary(int fd, std::span<const std::uint8_t> key, const std::string& volume) {
    auto mine = new_nonce();
    if (!mine) return mine.error();
    if (auto st = peer::send(fd, peer::Type::Auth, 0, 0, peer::encode_auth_challenge({*mine, volume})); !st)
        return st.error();
    auto theirs = expect(fd, peer::Type::Auth, peer::kAuthNonceSize, "the peer's AUTH");
    if (!theirs) return theirs.error();
    auto proof = auth_mac(key, "sanrepd-p", volume, *theirs, *mine);
    if (auto st = peer::send(fd, peer::Type::AuthProof, 0, 0, proof); !st) return st.error();
    // A secondary that found our proof wrong answers REFUSE instead.
    auto their_proof = expect(fd, peer::Type::AuthProof, sizeof(Mac), "the peer's AUTH_PROOF");
    if (!their_proof) return their_proof.error();
    if (!same(auth_mac(key, "sanrepd-s", volume, *mine, *theirs), *their_proof)) {
        (void)peer::send(fd, peer::Type::Refuse, 0, 0, peer::encode_refuse("authentication failed"));
        return Error{EPERM, "authentication failed: the peer does not hold our key"};
    }
    return {};
}

Status authenticate_secondary(int fd, std::span<const std::uint8_t> key, const std::string& volume) {
    constexpr std::size_t kAnySize = 0;
    auto body = expect(fd, peer::Type::Auth, kAnySize, "AUTH");
    auto challenge = body ? peer::decode_auth_challenge(*body) : Result<peer::AuthChallenge>(body.error());
    if (!challenge) {
        (void)peer::send(fd, peer::Type::Refuse, 0, 0, peer::encode_refuse("authentication required"));
        return Error{EPERM, challenge.error().message};
    }
    // The MACs bind the volume served here, whatever the primary named: a
    // primary of another volume fails as one without the key would.
    challenge->volume = volume;
    return authenticate_secondary(fd, key, *challenge);
}

Status authenticate_secondary(int fd, std::span<const std::uint8_t> key, const peer::AuthChallenge& challenge) {
    // Only our nonce: the primary proves itself first, so whoever can reach
    // this port gets no MAC of ours to guess the key from offline.
    auto mine = new_nonce();
    if (!mine) return mine.error();
    if (auto st = peer::send(fd, peer::Type::Auth, 0, 0, *mine); !st) return st.error();
    auto proof = expect(fd, peer::Type::AuthProof, sizeof(Mac), "AUTH_PROOF");
    if (!proof) return proof.error();
    if (!same(auth_mac(key, "sanrepd-p", challenge.volume, *mine, challenge.nonce), *proof)) {
        (void)peer::send(fd, peer::Type::Refuse, 0, 0, peer::encode_refuse("authentication failed"));
        return Error{EPERM, "authentication failed: the primary does not hold our key"};
    }
    auto mac = auth_mac(key, "sanrepd-s", challenge.volume, challenge.nonce, *mine);
    if (auto st = peer::send(fd, peer::Type::AuthProof, 0, 0, mac); !st) return st.error();
    return {};
}

}  // namespace sanagent::replicator
