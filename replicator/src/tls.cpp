#include "sanagent/replicator/tls.h"

#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <sys/stat.h>

#include <array>
#include <cstring>
#include <initializer_list>

#include "sanagent/replicator/secret_file.h"

namespace sanagent::replicator {

namespace {

constexpr std::size_t kMaxPskFile = 1 << 20;
constexpr std::size_t kMinPskKey = 16;
constexpr std::size_t kMaxPemFile = 1 << 20;

// TLS 1.3 and 1.2 only; the PSK key exchanges are added when PSK is what
// the server holds (GnuTLS's NORMAL leaves them out).
constexpr const char* kPriorityX509 = "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2";
constexpr const char* kPriorityPsk = "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:+ECDHE-PSK:+DHE-PSK:+PSK";

Error tls_error(int code, const std::string& what) {
    return Error{EPROTO, what + ": " + gnutls_strerror(code)};
}

// Frees what GnuTLS allocated for us.
struct GnutlsFree {
    void operator()(unsigned char* p) const { gnutls_free(p); }
};

}  // namespace

int TlsCredentials::find_psk(gnutls_session_t session, const char* identity, gnutls_datum_t* key) {
    // The credentials ride on the session's pointer (TlsSession::accept).
    const auto* creds = static_cast<const TlsCredentials*>(gnutls_session_get_ptr(session));
    if (!creds || !identity) return -1;
    auto it = creds->psk_keys_.find(identity);
    if (it == creds->psk_keys_.end()) return -1;  // an unknown identity fails the handshake
    key->data = static_cast<unsigned char*>(gnutls_malloc(it->second.size()));
    if (!key->data) return -1;
    std::memcpy(key->data, it->second.data(), it->second.size());
    key->size = static_cast<unsigned>(it->second.size());
    return 0;
}

TlsCredentials::~TlsCredentials() {
    if (psk_) gnutls_psk_free_server_credentials(psk_);
    if (x509_) gnutls_certificate_free_credentials(x509_);
    for (auto& [identity, key] : psk_keys_) explicit_bzero(key.data(), key.size());
}

namespace {

// What a reload compares: a digest of everything the credentials were made
// of, so that changed keys are noticed without keeping a copy of them.
std::array<std::uint8_t, 32> digest_of(std::initializer_list<std::span<const std::uint8_t>> parts) {
    std::array<std::uint8_t, 32> out{};
    gnutls_hash_hd_t h = nullptr;
    if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0) std::abort();  // SHA-256 is always there
    for (auto part : parts) gnutls_hash(h, part.data(), part.size());
    gnutls_hash_deinit(h, out.data());
    return out;
}

std::span<const std::uint8_t> bytes_of(const gnutls_datum_t& d) {
    return {d.data, d.size};
}

// Whether an optional file of an X.509 directory is there: only "no such
// file" means absent; anything else (a dangling symlink, no permission) is
// an error, so that a CA that cannot be read never means "no client check".
Result<bool> present(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) return true;
    if (errno == ENOENT) return false;
    return last_errno("TLS: " + path);
}

}  // namespace

Result<std::shared_ptr<TlsCredentials>> TlsCredentials::load_psk(const std::string& path) {
    auto text = read_secret_file(path, "TLS PSK file", kMaxPskFile);
    if (!text) return text.error();
    WipeOnExit wipe_text(*text);
    std::shared_ptr<TlsCredentials> creds(new TlsCredentials);
    creds->describe_ = "PSK " + path;
    creds->digest_ = digest_of({*text});
    std::string all(text->begin(), text->end());
    WipeOnExit wipe_all(all);
    std::size_t line_no = 0;
    for (std::size_t pos = 0; pos < all.size();) {
        auto end = all.find('\n', pos);
        if (end == std::string::npos) end = all.size();
        std::string line = all.substr(pos, end - pos);
        WipeOnExit wipe_line(line);
        pos = end + 1;
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty() || line[0] == '#') continue;
        const std::string where = path + ":" + std::to_string(line_no) + ": ";
        auto colon = line.rfind(':');
        if (colon == std::string::npos || colon == 0)
            return Error{EINVAL, where + "expected IDENTITY:HEXKEY (psktool -u IDENTITY -p " + path + ")"};
        std::string hex = line.substr(colon + 1);
        WipeOnExit wipe_hex(hex);
        gnutls_datum_t in{reinterpret_cast<unsigned char*>(hex.data()), static_cast<unsigned>(hex.size())};
        gnutls_datum_t out{};
        if (int r = gnutls_hex_decode2(&in, &out); r < 0)
            return Error{EINVAL, where + "the key is not hexadecimal: " + gnutls_strerror(r)};
        std::unique_ptr<unsigned char, GnutlsFree> owned(out.data);
        std::vector<std::uint8_t> key(out.data, out.data + out.size);
        WipeOnExit wipe_key(key);  // moved from when kept: then empty
        explicit_bzero(out.data, out.size);
        if (key.size() < kMinPskKey)
            return Error{EINVAL, where + "the key is " + std::to_string(key.size()) + " bytes; use 16 or more"};
        if (!creds->psk_keys_.try_emplace(line.substr(0, colon), std::move(key)).second)
            return Error{EINVAL, where + "identity '" + line.substr(0, colon) + "' is given twice"};
    }
    if (creds->psk_keys_.empty()) return Error{EINVAL, "TLS PSK file " + path + ": no IDENTITY:HEXKEY line"};
    if (int r = gnutls_psk_allocate_server_credentials(&creds->psk_); r < 0) return tls_error(r, "TLS PSK credentials");
    gnutls_psk_set_server_credentials_function(creds->psk_, find_psk);
    return creds;
}

Result<std::shared_ptr<TlsCredentials>> TlsCredentials::load_x509(const std::string& dir) {
    const std::string cert_path = dir + "/server-cert.pem";
    const std::string key_path = dir + "/server-key.pem";
    const std::string ca_path = dir + "/ca-cert.pem";
    const std::string crl_path = dir + "/ca-crl.pem";
    std::shared_ptr<TlsCredentials> creds(new TlsCredentials);
    creds->describe_ = "X.509 " + dir;
    if (int r = gnutls_certificate_allocate_credentials(&creds->x509_); r < 0)
        return tls_error(r, "TLS certificate credentials");
    auto key = read_secret_file(key_path, "TLS private key", kMaxPemFile);
    if (!key) return key.error();
    WipeOnExit wipe_key(*key);
    gnutls_datum_t key_datum{key->data(), static_cast<unsigned>(key->size())};
    // The certificates are public and read as they are; the key only
    // through the owner and mode check.
    gnutls_datum_t cert{}, ca{}, crl{};
    std::unique_ptr<unsigned char, GnutlsFree> cert_owned, ca_owned, crl_owned;
    if (int r = gnutls_load_file(cert_path.c_str(), &cert); r < 0)
        return tls_error(r, "reading the TLS certificate " + cert_path);
    cert_owned.reset(cert.data);
    if (int r = gnutls_certificate_set_x509_key_mem(creds->x509_, &cert, &key_datum, GNUTLS_X509_FMT_PEM); r < 0)
        return tls_error(r, "TLS certificate " + cert_path + " with key " + key_path);
    auto has_ca = present(ca_path);
    if (!has_ca) return has_ca.error();
    if (*has_ca) {
        if (int r = gnutls_load_file(ca_path.c_str(), &ca); r < 0)
            return tls_error(r, "reading the TLS CA certificate " + ca_path);
        ca_owned.reset(ca.data);
        int n = gnutls_certificate_set_x509_trust_mem(creds->x509_, &ca, GNUTLS_X509_FMT_PEM);
        if (n < 0) return tls_error(n, "TLS CA certificate " + ca_path);
        if (n == 0) return Error{EINVAL, "TLS CA certificate " + ca_path + ": no certificate in it"};
        creds->verify_clients_ = true;
        creds->describe_ += ", clients need a certificate from ca-cert.pem";
    } else {
        creds->describe_ += ", clients not asked for a certificate (no ca-cert.pem)";
    }
    auto has_crl = present(crl_path);
    if (!has_crl) return has_crl.error();
    if (*has_crl) {
        if (!*has_ca) return Error{EINVAL, "TLS: " + crl_path + " without ca-cert.pem: clients are not checked at all"};
        if (int r = gnutls_load_file(crl_path.c_str(), &crl); r < 0)
            return tls_error(r, "reading the TLS revocation list " + crl_path);
        crl_owned.reset(crl.data);
        if (int n = gnutls_certificate_set_x509_crl_mem(creds->x509_, &crl, GNUTLS_X509_FMT_PEM); n < 0)
            return tls_error(n, "TLS revocation list " + crl_path);
        creds->describe_ += " not revoked in ca-crl.pem";
    }
    creds->digest_ = digest_of({*key, bytes_of(cert), bytes_of(ca), bytes_of(crl)});
    return creds;
}

TlsSession::~TlsSession() {
    if (session_) gnutls_deinit(session_);
}

Result<std::unique_ptr<TlsSession>> TlsSession::accept(int fd, std::shared_ptr<const TlsCredentials> credentials,
                                                       int timeout_ms) {
    std::unique_ptr<TlsSession> s(new TlsSession);
    s->credentials_ = std::move(credentials);
    const TlsCredentials& c = *s->credentials_;
    // NO_SIGNAL: a client gone mid-send is an error, not SIGPIPE.
    if (int r = gnutls_init(&s->session_, GNUTLS_SERVER | GNUTLS_NO_SIGNAL); r < 0) return tls_error(r, "TLS session");
    gnutls_session_set_ptr(s->session_, const_cast<TlsCredentials*>(&c));
    const char* err_pos = nullptr;
    if (int r = gnutls_priority_set_direct(s->session_, c.psk_ ? kPriorityPsk : kPriorityX509, &err_pos); r < 0)
        return tls_error(r, "TLS priorities");
    int r = c.psk_ ? gnutls_credentials_set(s->session_, GNUTLS_CRD_PSK, c.psk_)
                   : gnutls_credentials_set(s->session_, GNUTLS_CRD_CERTIFICATE, c.x509_);
    if (r < 0) return tls_error(r, "TLS credentials");
    if (c.verify_clients_) gnutls_certificate_server_set_request(s->session_, GNUTLS_CERT_REQUIRE);
    gnutls_transport_set_int(s->session_, fd);
    gnutls_handshake_set_timeout(s->session_, static_cast<unsigned>(timeout_ms));
    // Bounded: GnuTLS ends the handshake with GNUTLS_E_TIMEDOUT after timeout_ms.
    do {
        r = gnutls_handshake(s->session_);
    } while (r < 0 && !gnutls_error_is_fatal(r));
    if (r < 0) {
        // What a wrong PSK (a failed binder or finished message), an unknown
        // identity or a rejected certificate end the handshake with.
        const bool refused = r == GNUTLS_E_RECEIVED_ILLEGAL_PARAMETER || r == GNUTLS_E_DECRYPTION_FAILED ||
                             r == GNUTLS_E_KEYFILE_ERROR || r == GNUTLS_E_INSUFFICIENT_CREDENTIALS ||
                             r == GNUTLS_E_CERTIFICATE_ERROR || r == GNUTLS_E_NO_CERTIFICATE_FOUND ||
                             r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR || r == GNUTLS_E_CERTIFICATE_REQUIRED;
        if (refused)
            return Error{EACCES, std::string("TLS handshake: client refused (its key, identity or certificate is "
                                             "not one of ours): ") +
                                     gnutls_strerror(r)};
        return Error{r == GNUTLS_E_TIMEDOUT ? ETIMEDOUT : EPROTO, std::string("TLS handshake: ") + gnutls_strerror(r)};
    }
    if (c.psk_) {
        const char* id = gnutls_psk_server_get_username(s->session_);
        s->peer_ = std::string("psk identity ") + (id ? id : "?");
    } else if (c.verify_clients_) {
        unsigned status = 0;
        if (int v = gnutls_certificate_verify_peers2(s->session_, &status); v < 0)
            return tls_error(v, "TLS: verifying the client's certificate");
        if (status != 0) {
            gnutls_datum_t why{};
            gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why, 0);
            std::unique_ptr<unsigned char, GnutlsFree> owned(why.data);
            return Error{EACCES, std::string("TLS: the client's certificate is not accepted: ") +
                                     (why.data ? reinterpret_cast<const char*>(why.data) : "?")};
        }
        unsigned n = 0;
        const gnutls_datum_t* chain = gnutls_certificate_get_peers(s->session_, &n);
        gnutls_x509_crt_t crt = nullptr;
        s->peer_ = "certificate";
        if (chain && n > 0 && gnutls_x509_crt_init(&crt) >= 0) {
            gnutls_datum_t dn{};
            if (gnutls_x509_crt_import(crt, &chain[0], GNUTLS_X509_FMT_DER) >= 0 &&
                gnutls_x509_crt_get_dn2(crt, &dn) >= 0) {
                std::unique_ptr<unsigned char, GnutlsFree> owned(dn.data);
                s->peer_ = "certificate " + std::string(reinterpret_cast<const char*>(dn.data), dn.size);
            }
            gnutls_x509_crt_deinit(crt);
        }
    } else {
        s->peer_ = "anonymous client (no ca-cert.pem: certificates not asked for)";
    }
    return s;
}

std::string TlsSession::describe() const {
    const char* version = gnutls_protocol_get_name(gnutls_protocol_get_version(session_));
    const char* cipher = gnutls_cipher_get_name(gnutls_cipher_get(session_));
    return std::string(version ? version : "?") + " " + (cipher ? cipher : "?");
}

ssize_t TlsSession::recv_some(std::uint8_t* buf, std::size_t len) {
    for (;;) {
        ssize_t r = gnutls_record_recv(session_, buf, len);
        if (r >= 0) return r;
        // AGAIN also follows a post-handshake message (a TLS 1.3 key
        // update): nothing to return yet, read on. The socket has no
        // receive timeout while TLS is up; set_timeout() bounds a read.
        if (r == GNUTLS_E_INTERRUPTED || r == GNUTLS_E_AGAIN) continue;
        errno = r == GNUTLS_E_TIMEDOUT ? ETIMEDOUT : r == GNUTLS_E_PREMATURE_TERMINATION ? ECONNRESET : EPROTO;
        return -1;
    }
}

Status TlsSession::read_full(std::span<std::uint8_t> out) {
    std::size_t done = 0;
    while (done < out.size()) {
        ssize_t n = recv_some(out.data() + done, out.size() - done);
        if (n < 0) return last_errno("receiving over TLS");
        if (n == 0)
            return Error{ECONNRESET, done ? "receiving over TLS: connection closed mid-message"
                                          : "receiving over TLS: connection closed"};
        done += static_cast<std::size_t>(n);
    }
    return {};
}

Status TlsSession::writev_full(const struct iovec* iov, int count, std::atomic<std::uint64_t>* progress) {
    std::size_t total = 0;
    for (int i = 0; i < count; ++i) total += iov[i].iov_len;
    // A short reply (a header, or a header and 4 KiB) goes as one record; a
    // large one is sent buffer by buffer, without copying it into the cork.
    const bool cork = count > 1 && total <= 16 * 1024;
    if (cork) gnutls_record_cork(session_);
    for (int i = 0; i < count; ++i) {
        const auto* p = static_cast<const std::uint8_t*>(iov[i].iov_base);
        std::size_t left = iov[i].iov_len;
        while (left > 0) {
            ssize_t n = gnutls_record_send(session_, p, left);
            if (n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_AGAIN) continue;
            if (n < 0) return tls_error(static_cast<int>(n), "sending over TLS");
            p += n;
            left -= static_cast<std::size_t>(n);
            if (progress && !cork) *progress += static_cast<std::uint64_t>(n);
        }
    }
    if (cork) {
        // WAIT: retries AGAIN and INTERRUPTED itself until all is sent.
        if (int r = gnutls_record_uncork(session_, GNUTLS_RECORD_WAIT); r < 0) return tls_error(r, "sending over TLS");
        if (progress) *progress += total;
    }
    return {};
}

Status TlsSession::write_full(std::span<const std::uint8_t> data) {
    struct iovec iov {
        const_cast<std::uint8_t*>(data.data()), data.size()
    };
    return writev_full(&iov, 1);
}

void TlsSession::set_timeout(int ms) {
    gnutls_record_set_timeout(session_, static_cast<unsigned>(ms));
}

std::size_t TlsSession::pending() const {
    return gnutls_record_check_pending(session_);
}

void TlsSession::bye() {
    gnutls_bye(session_, GNUTLS_SHUT_WR);
}

}  // namespace sanagent::replicator
