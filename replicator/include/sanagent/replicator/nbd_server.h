// The NBD front end: listens on a UNIX socket (and, if asked, TCP), runs the
// fixed-newstyle handshake, then serves simple-reply transmission for one
// export backed by a Volume.
//
// Threads: one epoll loop accepts (listening sockets + a stop eventfd); each
// connection has kThreadsPerConnection threads that take turns reading a
// request and then do its I/O themselves (leader/follower, as nbdkit does),
// so the common path has no thread hand-off; writes that must wait for an
// overlapping one run later on the Volume's worker pool. Completions write the
// reply under the connection's send lock, so replies go out in completion
// order, as the protocol allows. A connection keeps at most kMaxInFlight
// requests open; readers wait past that, which bounds memory.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sanagent/fd.h"
#include "sanagent/replicator/nbd_handshake.h"
#include "sanagent/replicator/tls.h"
#include "sanagent/replicator/volume.h"
#include "sanagent/result.h"

namespace sanagent::replicator {

class NbdConnection;

class NbdServer {
public:
    static constexpr unsigned kMaxConnections = 64;
    // Of those, slots only the UNIX socket may take: clients on TCP (from
    // the network, possibly not authenticated yet) cannot crowd out the
    // node's own (the kernel's nbd device, qemu).
    static constexpr unsigned kReservedForUnix = 8;
    static constexpr unsigned kMaxInFlight = 128;
    static constexpr unsigned kThreadsPerConnection = 32;

    NbdServer(nbd::ExportInfo exp, Volume& volume);
    ~NbdServer();

    // Bind before run(). A stale socket file is replaced; the socket is 0600.
    Status listen_unix(const std::string& path);
    // TLS for the TCP listeners (FORCEDTLS: no option is answered before
    // STARTTLS). Call before listen_tcp; called again (a reload with new
    // keys), new connections use the new credentials. The UNIX socket stays
    // plain: it is local and root-only, and the kernel's nbd client cannot
    // speak TLS.
    void require_tls(std::shared_ptr<const TlsCredentials> credentials);
    std::shared_ptr<const TlsCredentials> tls_credentials() const;
    // "HOST:PORT" with a numeric host (IPv6 in brackets). Without TLS a
    // warning is logged.
    Status listen_tcp(const std::string& address);

    // Serves until stop() is called (from any thread or a signal handler).
    Status run();
    void stop();

    std::size_t connections() const;
    // Clients connected now (connections() also counts ended ones not yet reaped).
    std::size_t active_connections() const;
    // Turns new clients away if none is connected, and says whether it did;
    // then stop() cannot cut off a client that came in after the check.
    bool close_if_idle();

private:
    void accept_on(int listen_fd);
    void reap();
    nbd::ExportInfo export_;
    Volume& volume_;
    std::vector<UniqueFd> listeners_;
    std::vector<std::string> unix_paths_;
    std::vector<int> tcp_listeners_;
    std::shared_ptr<const TlsCredentials> tls_credentials_;  // under mu_
    bool closed_ = false;                                    // under mu_: close_if_idle()
    UniqueFd stop_fd_;
    mutable std::mutex mu_;
    std::vector<std::shared_ptr<NbdConnection>> conns_;
};

}  // namespace sanagent::replicator
