#include "sanagent/replicator/nbd_server.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <optional>
#include <system_error>

#include "sanagent/replicator/handshake_deadline.h"
#include "sanagent/replicator/nbd_protocol.h"
#include "sanagent/replicator/net.h"
#include "sanagent/replicator/thread_name.h"

namespace sanagent::replicator {

namespace {
constexpr int kHandshakeTimeoutMs = 30'000;  // a client that stalls mid-handshake is dropped
constexpr std::uint32_t kQueuedWriteMax = 64 * 1024;  // larger writes hand the read lock on
}

class NbdConnection : public std::enable_shared_from_this<NbdConnection> {
public:
    NbdConnection(UniqueFd fd, const nbd::ExportInfo& exp, Volume& volume, bool tcp,
                  std::shared_ptr<const TlsCredentials> tls_credentials)
        : tcp_(tcp),
          fd_(std::move(fd)),
          export_(exp),
          volume_(volume),
          tls_credentials_(std::move(tls_credentials)),
          tls_mode_(tls_credentials_ ? nbd::Tls::Required : nbd::Tls::Off) {}
    ~NbdConnection() {
        if (thread_.joinable()) thread_.join();
    }

    void start() {
        // The server keeps this object alive until it has joined the thread.
        thread_ = std::thread([this] {
            name_thread("nbd-conn");
            serve();
        });
    }
    void shutdown() { ::shutdown(fd_.get(), SHUT_RDWR); }
    bool finished() const { return finished_.load(); }
    bool over_tcp() const { return tcp_; }
    void join() {
        if (thread_.joinable()) thread_.join();
    }

private:
    void log(const std::string& what) {
        std::fprintf(stderr, "sanrepd: nbd client fd %d: %s\n", fd_.get(), what.c_str());
    }

    void serve() {
        Result<bool> go = false;
        {
            // 30 s for the whole negotiation, TLS included.
            HandshakeDeadline deadline(fd_.get(), std::chrono::milliseconds(kHandshakeTimeoutMs));
            go = handshake();
            deadline.disarm();
            if (deadline.expired()) {
                log("closing: no complete handshake within " + std::to_string(kHandshakeTimeoutMs / 1000) + " s");
                go = false;
            }
        }
        if (!go) {
            if (go.error().code != ECONNRESET && go.error().code != EPIPE) log("handshake: " + go.error().message);
        } else if (*go) {
            transmission();
        }
        // Completions still running hold a reference and write on fd_: wait
        // for them before declaring this connection done.
        {
            std::unique_lock lock(inflight_mu_);
            inflight_cv_.wait(lock, [this] { return inflight_ == 0; });
        }
        // The spec: end the TLS session, then the connection (not when the
        // socket broke: nothing would arrive).
        if (tls_ && go && *go) {
            std::lock_guard lock(send_mu_);
            if (!broken_) tls_->bye();
        }
        // The client sees the end now, not when the accept loop reaps this
        // object (up to a second later): after NBD_CMD_DISC, libnbd's
        // clients wait for it (nbdcopy took 2 s for 256 MiB it copies in 0.2).
        ::shutdown(fd_.get(), SHUT_RDWR);
        finished_ = true;
    }

    // The handshake's I/O: on the socket, or in the TLS session once there is one.
    Status recv_exact(std::span<std::uint8_t> out) { return tls_ ? tls_->read_full(out) : read_full(fd_.get(), out); }
    Status send_all(std::span<const std::uint8_t> data) {
        return tls_ ? tls_->write_full(data) : write_full(fd_.get(), data);
    }

    // True when the client chose an export and transmission starts.
    Result<bool> handshake() {
        set_recv_timeout(fd_.get(), kHandshakeTimeoutMs);
        auto greeting = nbd::encode_greeting();
        if (auto st = send_all(greeting); !st) return st.error();
        std::uint8_t flags_bytes[4];
        if (auto st = recv_exact(flags_bytes); !st) return st.error();
        auto flags = nbd::decode_client_flags(flags_bytes);
        if (!flags) return flags.error();
        bool no_zeroes = *flags & nbd::kFlagNoZeroes;
        // Bounded: a client gets a fixed number of options before we give up.
        for (int i = 0; i < 64; ++i) {
            std::uint8_t hdr[nbd::kOptionHeaderSize];
            if (auto st = recv_exact(hdr); !st) return st.error();
            auto h = nbd::decode_option_header(hdr);
            if (!h) return h.error();
            std::vector<std::uint8_t> data(h->length);
            if (auto st = recv_exact(data); !st) return st.error();
            auto outcome = nbd::negotiate(export_, no_zeroes, h->option, data, tls_mode_);
            if (!outcome.reply.empty()) {
                if (auto st = send_all(outcome.reply); !st) return st.error();
            }
            if (outcome.next == nbd::Next::Close) {
                if (tls_mode_ == nbd::Tls::Required && h->option != nbd::kOptAbort)
                    log("closing: the client asked for an export without TLS, which this listener requires");
                return false;
            }
            if (outcome.next == nbd::Next::StartTls) {
                auto session = TlsSession::accept(fd_.get(), tls_credentials_, kHandshakeTimeoutMs);
                if (!session) return session.error();  // no way back to plain text after the ACK
                tls_ = std::move(*session);
                tls_mode_ = nbd::Tls::Active;
                // From here GnuTLS bounds the reads: a socket timeout would
                // look to it like a read to retry.
                set_recv_timeout(fd_.get(), 0);
                tls_->set_timeout(kHandshakeTimeoutMs);
                log("TLS: " + tls_->describe() + ", " + tls_->peer());
                receiver_.read_from([tls = tls_.get()](std::uint8_t* buf, std::size_t len) {
                    return tls->recv_some(buf, len);
                });
                continue;
            }
            if (outcome.next == nbd::Next::Transmit) {
                set_recv_timeout(fd_.get(), 0);
                if (tls_) tls_->set_timeout(0);
                return true;
            }
        }
        return Error{EPROTO, "too many options"};
    }

    // Leader/follower: kThreads threads take turns reading the next request
    // under read_mu_, order it in the volume while still holding the lock (so
    // the volume sees requests in wire order), then run it on their own
    // thread. No hand-off to another thread on the common path: that is the
    // latency a 4 KiB QD1 write pays twice otherwise.
    void transmission() {
        // Reads and writes of this connection go through its own ring: a
        // client that stops reading replies then holds up only itself.
        if (auto ring = IoRing::create(2 * NbdServer::kMaxInFlight)) {
            ring_ = std::move(*ring);
        } else {
            static std::once_flag logged;
            std::call_once(logged, [&] { log("no io_uring (" + ring.error().message + "): blocking I/O"); });
        }
        struct EndRing {
            NbdConnection& conn;
            // After the threads: no request of this connection may still
            // use the ring when it goes. A write queued behind an overlapping
            // one is put on the ring only when that one completes, so first
            // every request is answered, then the ring ends.
            ~EndRing() {
                conn.wait_idle();
                conn.ring_.reset();
            }
        } end_ring{*this};
        std::vector<std::thread> helpers;
        try {
            for (unsigned i = 1; i < NbdServer::kThreadsPerConnection; ++i)
                helpers.emplace_back([this] {
                    name_thread("nbd-conn");
                    serve_requests();
                });
        } catch (const std::system_error& e) {
            // Out of threads (TasksMax, RLIMIT_NPROC): serve with those we have.
            log(std::string("serving with ") + std::to_string(helpers.size() + 1) + " threads: " + e.what());
        }
        serve_requests();
        for (auto& t : helpers) t.join();
    }

    void serve_requests() {
        std::unique_lock read_lock(read_mu_, std::defer_lock);
        for (;;) {
            if (!read_lock.owns_lock()) read_lock.lock();
            if (closed_) return;
            auto next = read_one();
            if (!next) {
                closed_ = true;
                ::shutdown(fd_.get(), SHUT_RD);
                return;
            }
            auto work = std::move(*next);
            if (!work) {
                submit_unless_more_waiting();
                continue;
            }
            if (last_is_queued_) {
                // A read on the ring: queueing it does not block, so this
                // thread keeps the lock and reads on; what it queued goes to
                // the kernel in one submission once no request waits.
                work();
                submit_unless_more_waiting();
                continue;
            }
            // The next reader is woken only when another request is already
            // in the socket, or this one may take long (a flush, FUA, trim or
            // zeroing: a request arriving meanwhile must not wait behind its
            // fdatasync). Otherwise this thread runs the request and reads on:
            // a client at queue depth 1 then costs no thread wake-up per
            // request (measured: a fifth of a 4 KiB QD1 write's latency).
            if (last_may_block_ || request_waiting()) {
                submit();
                read_lock.unlock();
            }
            work();
            submit();  // a write this thread queued
        }
    }

    void submit() {
        if (ring_) ring_->submit();
    }
    // Until no request is in flight, submitting what was queued meanwhile.
    // Bounded: each op completes once its I/O does (and the peer's ack or
    // its timeout).
    void wait_idle() {
        std::unique_lock lock(inflight_mu_);
        while (inflight_ != 0) {
            lock.unlock();
            submit();
            lock.lock();
            inflight_cv_.wait_for(lock, std::chrono::milliseconds(20), [this] { return inflight_ == 0; });
        }
    }
    // Called with read_mu_ held.
    void submit_unless_more_waiting() {
        if (!request_waiting()) submit();
    }

    // Called with read_mu_ held.
    bool request_waiting() const {
        if (receiver_.buffered() > 0 || (tls_ && tls_->pending())) return true;
        int bytes = 0;
        return ::ioctl(fd_.get(), FIONREAD, &bytes) == 0 && bytes > 0;
    }

    // Reads and orders one request. The outer optional is empty when the
    // connection must end; the function inside is the work to run (empty if
    // it was answered already or queued behind an overlapping write).
    std::optional<std::function<void()>> read_one() {
        std::array<std::uint8_t, nbd::kRequestSize> hdr;
        if (auto st = receiver_.read_full(hdr); !st) {
            if (st.error().code != ECONNRESET) log(st.error().message);
            return std::nullopt;
        }
        auto req = nbd::decode_request(hdr);
        if (!req) {
            log("closing: " + req.error().message);
            return std::nullopt;
        }
        if (req->type == nbd::CommandType::Disconnect) return std::nullopt;
        last_may_block_ = (req->flags & nbd::kCmdFlagFua) ||
                          (req->type != nbd::CommandType::Read && req->type != nbd::CommandType::Write);
        // A large write's copy to the peer is worth another thread: the
        // next request is read meanwhile (1 MiB sequential, 2 replicas:
        // about 15% more with the hand-off).
        last_is_queued_ = ring_ && (req->type == nbd::CommandType::Read ||
                                    (req->type == nbd::CommandType::Write && !(req->flags & nbd::kCmdFlagFua) &&
                                     req->length <= kQueuedWriteMax));
        auto check = nbd::check_request(*req, export_.size, export_.max_block);
        if (check.verdict == nbd::Verdict::Close) {
            log("closing: " + check.why);
            return std::nullopt;
        }
        std::shared_ptr<AlignedBuffer> buf;
        if (req->type == nbd::CommandType::Write || req->type == nbd::CommandType::Read)
            buf = std::make_shared<AlignedBuffer>(req->length);
        if (req->type == nbd::CommandType::Write) {
            if (auto st = receiver_.read_full(buf->span()); !st) {
                log("reading write payload: " + st.error().message);
                return std::nullopt;
            }
        }
        if (check.verdict == nbd::Verdict::ReplyError) {
            if (!send_reply(req->handle, check.error, nullptr, 0)) return std::nullopt;
            return std::function<void()>{};
        }
        bool alone;
        {
            std::unique_lock lock(inflight_mu_);
            if (inflight_ >= NbdServer::kMaxInFlight) {
                // What waits to be submitted must complete to free a slot.
                lock.unlock();
                submit();
                lock.lock();
            }
            inflight_cv_.wait(lock, [this] { return inflight_ < NbdServer::kMaxInFlight; });
            alone = inflight_++ == 0;
        }
        // Alone (nothing in flight, nothing waiting, a client at queue depth
        // 1): this thread does the I/O the blocking way and answers. Through
        // the ring the completion thread would wake to answer (measured: 4
        // KiB QD1 writes, one replica, 10.4k against 12.1k IOPS).
        const bool blocking = alone && last_is_queued_ && !request_waiting();
        if (blocking) last_is_queued_ = false;
        auto op = to_op(*req, buf);
        op.ring = blocking ? nullptr : ring_.get();
        return volume_.submit_inline(
            std::move(op),
            [self = shared_from_this(), handle = req->handle, is_read = req->type == nbd::CommandType::Read,
             len = req->length](int err, std::shared_ptr<AlignedBuffer> data) {
                self->send_reply(handle, nbd::wire_error(err), (is_read && !err) ? data.get() : nullptr, len);
                std::lock_guard lock(self->inflight_mu_);
                --self->inflight_;
                self->inflight_cv_.notify_all();
            });
    }

    static Op to_op(const nbd::Request& r, std::shared_ptr<AlignedBuffer> buf) {
        Op op;
        op.offset = r.offset;
        op.length = r.length;
        op.fua = r.flags & nbd::kCmdFlagFua;
        op.data = std::move(buf);
        switch (r.type) {
            case nbd::CommandType::Read:
                op.type = OpType::Read;
                break;
            case nbd::CommandType::Write:
                op.type = OpType::Write;
                break;
            case nbd::CommandType::Flush:
                op.type = OpType::Flush;
                break;
            case nbd::CommandType::Trim:
                op.type = OpType::Trim;
                break;
            case nbd::CommandType::WriteZeroes:
                op.type = OpType::Zero;
                op.may_punch = !(r.flags & nbd::kCmdFlagNoHole);
                break;
            case nbd::CommandType::Disconnect:
                break;
        }
        return op;
    }

    bool send_reply(std::uint64_t handle, std::uint32_t error, const AlignedBuffer* data, std::size_t len) {
        auto hdr = nbd::encode_simple_reply(error, handle);
        struct iovec iov[2] = {{hdr.data(), hdr.size()},
                               {data ? const_cast<std::uint8_t*>(data->data()) : nullptr, len}};
        std::lock_guard lock(send_mu_);
        if (broken_) return false;
        auto st = tls_ ? tls_->writev_full(iov, data ? 2 : 1) : writev_full(fd_.get(), iov, data ? 2 : 1);
        if (!st) {
            broken_ = true;
            ::shutdown(fd_.get(), SHUT_RDWR);  // the reader sees it and ends
            return false;
        }
        return true;
    }

    const bool tcp_;
    UniqueFd fd_;
    const nbd::ExportInfo& export_;
    Volume& volume_;
    const std::shared_ptr<const TlsCredentials> tls_credentials_;  // null: no TLS on this connection
    nbd::Tls tls_mode_;                                             // the handshake's thread only
    std::unique_ptr<TlsSession> tls_;  // set in the handshake, before any other thread of this connection
    std::thread thread_;
    std::atomic<bool> finished_{false};
    std::mutex read_mu_;
    BufferedReceiver receiver_{fd_.get()};  // transmission phase only, under read_mu_
    bool last_may_block_ = false;           // the request read last (under read_mu_)
    bool last_is_queued_ = false;           // ... is a read the ring takes (under read_mu_)
    std::unique_ptr<IoRing> ring_;          // set before the threads start, reset after they end
    bool closed_ = false;
    std::mutex send_mu_;
    bool broken_ = false;
    std::mutex inflight_mu_;
    std::condition_variable inflight_cv_;
    unsigned inflight_ = 0;
};

NbdServer::NbdServer(nbd::ExportInfo exp, Volume& volume)
    : export_(std::move(exp)), volume_(volume), stop_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

NbdServer::~NbdServer() {
    std::vector<std::shared_ptr<NbdConnection>> conns;
    {
        std::lock_guard lock(mu_);
        conns.swap(conns_);
    }
    for (auto& c : conns) c->shutdown();
    for (auto& c : conns) c->join();
    for (auto& p : unix_paths_) ::unlink(p.c_str());
}

Status NbdServer::listen_unix(const std::string& path) {
    auto fd = unix_listen(path);
    if (!fd) return fd.error().context("NBD socket");
    listeners_.push_back(std::move(*fd));
    unix_paths_.push_back(path);
    return {};
}

void NbdServer::require_tls(std::shared_ptr<const TlsCredentials> credentials) {
    std::lock_guard lock(mu_);
    tls_credentials_ = std::move(credentials);
}

std::shared_ptr<const TlsCredentials> NbdServer::tls_credentials() const {
    std::lock_guard lock(mu_);
    return tls_credentials_;
}

Status NbdServer::listen_tcp(const std::string& address) {
    auto fd = tcp_listen(address);
    if (!fd) return fd.error().context("NBD TCP listener");
    auto tls = tls_credentials();
    if (tls && tls->authenticates_clients())
        std::fprintf(stderr, "sanrepd: NBD on TCP %s requires TLS (%s)\n", address.c_str(), tls->describe().c_str());
    else if (tls)
        std::fprintf(stderr,
                     "sanrepd: warning: NBD on TCP %s requires TLS (%s): encrypted, but anyone who can reach it "
                     "can read and write the volume (add ca-cert.pem)\n",
                     address.c_str(), tls->describe().c_str());
    else
        std::fprintf(stderr,
                     "sanrepd: warning: NBD on TCP %s without TLS: anyone who can reach it can read and write the "
                     "volume (give nbd_tls_psk or nbd_tls_dir)\n",
                     address.c_str());
    tcp_listeners_.push_back(fd->get());
    listeners_.push_back(std::move(*fd));
    return {};
}

void NbdServer::stop() {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(stop_fd_.get(), &one, sizeof one);
}

std::size_t NbdServer::connections() const {
    std::lock_guard lock(mu_);
    return conns_.size();
}

bool NbdServer::close_if_idle() {
    std::lock_guard lock(mu_);
    for (const auto& c : conns_)
        if (!c->finished()) return false;
    closed_ = true;
    return true;
}

std::size_t NbdServer::active_connections() const {
    std::lock_guard lock(mu_);
    return static_cast<std::size_t>(
        std::count_if(conns_.begin(), conns_.end(), [](const auto& c) { return !c->finished(); }));
}

void NbdServer::reap() {
    std::vector<std::shared_ptr<NbdConnection>> done;
    {
        std::lock_guard lock(mu_);
        for (auto it = conns_.begin(); it != conns_.end();) {
            if ((*it)->finished()) {
                done.push_back(std::move(*it));
                it = conns_.erase(it);
            } else {
                ++it;
            }
        }
    }
    for (auto& c : done) c->join();
}

void NbdServer::accept_on(int listen_fd) {
    UniqueFd fd(::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd.valid()) return;
    reap();
    std::lock_guard lock(mu_);
    if (closed_) return;  // the volume is leaving (a reload): the client sees the connection close
    if (conns_.size() >= kMaxConnections) {
        std::fprintf(stderr, "sanrepd: refusing NBD connection: %u already open\n", kMaxConnections);
        return;
    }
    const bool tcp = std::find(tcp_listeners_.begin(), tcp_listeners_.end(), listen_fd) != tcp_listeners_.end();
    if (tcp && std::count_if(conns_.begin(), conns_.end(), [](const auto& c) { return c->over_tcp(); }) >=
                   kMaxConnections - kReservedForUnix) {
        std::fprintf(stderr, "sanrepd: refusing NBD connection on TCP: %u already open (%u kept for the UNIX socket)\n",
                     kMaxConnections - kReservedForUnix, kReservedForUnix);
        return;
    }
    auto conn =
        std::make_shared<NbdConnection>(std::move(fd), export_, volume_, tcp, tcp ? tls_credentials_ : nullptr);
    try {
        conn->start();
    } catch (const std::system_error& e) {
        // Only this client is turned away; the daemon and its volumes go on.
        std::fprintf(stderr, "sanrepd: refusing NBD connection: no thread for it: %s\n", e.what());
        return;
    }
    conns_.push_back(std::move(conn));
}

Status NbdServer::run() {
    UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
    if (!ep.valid()) return last_errno("epoll_create1");
    auto add = [&](int fd) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = fd;
        return ::epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &ev);
    };
    if (add(stop_fd_.get()) < 0) return last_errno("epoll_ctl");
    for (auto& l : listeners_)
        if (add(l.get()) < 0) return last_errno("epoll_ctl");
    for (;;) {
        epoll_event evs[8];
        // The timeout only paces reaping of finished connections.
        int n = ::epoll_wait(ep.get(), evs, 8, 1000);
        if (n < 0 && errno != EINTR) return last_errno("epoll_wait");
        for (int i = 0; i < n; ++i) {
            if (evs[i].data.fd == stop_fd_.get()) return {};
            accept_on(evs[i].data.fd);
        }
        reap();
    }
}

}  // namespace sanagent::replicator
