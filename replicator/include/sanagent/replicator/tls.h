// TLS for NBD on TCP (NBD_OPT_STARTTLS), server side, with GnuTLS: the
// library qemu, nbdkit and libnbd use, so their key files work here as they
// are (psktool's "identity:hexkey" lines; an X.509 directory with
// server-cert.pem, server-key.pem and ca-cert.pem).
//
// Only TLS 1.3 and 1.2 are offered (the NBD spec: 1.2 at least, nothing
// older by default). One session may be used by one receiving and one sending
// thread at a time, as GnuTLS allows; NbdConnection serialises each side (as
// nbdkit does). The one exception GnuTLS has: a TLS 1.3 key update the
// client asks to be answered makes the receiving thread send. qemu's and
// libnbd's clients never ask for one.
#pragma once

#include <gnutls/gnutls.h>
#include <sys/uio.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "sanagent/result.h"

namespace sanagent::replicator {

class TlsCredentials {
public:
    // PSK: every line of the file "identity:hexkey" (psktool's format; keys
    // of 16 bytes or more). The file is root-owned, 0600.
    static Result<std::shared_ptr<TlsCredentials>> load_psk(const std::string& path);
    // X.509: DIR/server-cert.pem and DIR/server-key.pem (root-owned, 0600);
    // with DIR/ca-cert.pem clients must present a certificate it signed,
    // and with DIR/ca-crl.pem one it has not revoked. A CA file that is
    // there but cannot be read is an error, never "no client check".
    static Result<std::shared_ptr<TlsCredentials>> load_x509(const std::string& dir);

    ~TlsCredentials();
    TlsCredentials(const TlsCredentials&) = delete;
    TlsCredentials& operator=(const TlsCredentials&) = delete;

    // "PSK FILE" or "X.509 DIR, ...", for the log.
    const std::string& describe() const { return describe_; }
    // Whether a client must prove who it is: always with PSK; with X.509
    // only when the directory has a CA to check client certificates with.
    bool authenticates_clients() const { return psk_ || verify_clients_; }
    // "psk", "x509" or "x509-no-client-check", for status.
    const char* kind() const { return psk_ ? "psk" : verify_clients_ ? "x509" : "x509-no-client-check"; }
    // Whether `other` was made from the same files, byte for byte.
    bool same_keys(const TlsCredentials& other) const { return digest_ == other.digest_; }

private:
    TlsCredentials() = default;
    friend class TlsSession;
    static int find_psk(gnutls_session_t session, const char* identity, gnutls_datum_t* key);
    std::string describe_;
    gnutls_psk_server_credentials_t psk_ = nullptr;
    gnutls_certificate_credentials_t x509_ = nullptr;
    bool verify_clients_ = false;
    std::array<std::uint8_t, 32> digest_{};                      // SHA-256 of the files
    std::map<std::string, std::vector<std::uint8_t>> psk_keys_;  // identity -> key
};

class TlsSession {
public:
    // The server's half of a handshake on a connected, blocking socket,
    // bounded by `timeout_ms`. EACCES when the client is not let in (wrong
    // key, unknown identity, certificate not signed by the CA).
    static Result<std::unique_ptr<TlsSession>> accept(int fd, std::shared_ptr<const TlsCredentials> credentials,
                                                      int timeout_ms);
    ~TlsSession();
    TlsSession(const TlsSession&) = delete;
    TlsSession& operator=(const TlsSession&) = delete;

    // As recv(2): bytes read, 0 at the end of the stream, -1 with errno set.
    ssize_t recv_some(std::uint8_t* buf, std::size_t len);
    Status read_full(std::span<std::uint8_t> out);
    // The buffers go out in as few records as fit (corked).
    // `progress`, when given, counts the bytes as they leave (record by
    // record), for a caller that watches a slow reader from another thread.
    Status writev_full(const struct iovec* iov, int count, std::atomic<std::uint64_t>* progress = nullptr);
    Status write_full(std::span<const std::uint8_t> data);
    // Bounds each read (GnuTLS polls the socket first); 0: none. Use this,
    // not SO_RCVTIMEO, once TLS is up.
    void set_timeout(int ms);
    // Decrypted bytes waiting in the session (a socket's FIONREAD misses them).
    std::size_t pending() const;
    // Ends the TLS stream (close_notify), as NBD_CMD_DISC asks.
    void bye();

    // Who the client is: "psk identity NAME", a certificate's DN, or "anonymous".
    const std::string& peer() const { return peer_; }
    // "TLS1.3 AES-256-GCM", for the log.
    std::string describe() const;

private:
    TlsSession() = default;
    gnutls_session_t session_ = nullptr;
    std::shared_ptr<const TlsCredentials> credentials_;
    std::string peer_;
};

}  // namespace sanagent::replicator
