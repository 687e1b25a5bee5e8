#include "sanagent/replicator/nbd_server.h"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <new>
#include <optional>
#include <system_error>

#include "sanagent/replicator/handshake_deadline.h"
#include "sanagent/replicator/nbd_protocol.h"
#include "sanagent/replicator/net.h"
#include "sanagent/replicator/thread_name.h"

namespace sanagent::replicator {

namespace {
constexpr int kHandshakeTimeoutMs = 30'000;           // a client that stalls mid-handshake is dropped
constexpr std::uint32_t kQueuedWriteMax = 64 * 1024;  // larger writes hand the read lock on
constexpr int kByeTimeoutMs = 1000;                   // the TLS close alert's send, at the end
// Bytes of request buffers one connection holds at most (one request of
// any allowed size always fits): without it, 128 requests of 32 MiB each,
// from each of 64 connections, could be held at once.
constexpr std::size_t kMaxInFlightBytes = 64u << 20;
constexpr int kMaxRepliesPerSend = 64;
// After its requests end (DISC, an error), how long a client may leave its
// replies unread before the connection is cut.
constexpr std::chrono::milliseconds kUnreadRepliesAfterEnd{10'000};
}  // namespace

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
            std::lock_guard lock(out_mu_);
            // Bounded: a client that reads nothing more (its socket full of
            // replies) would hold the alert's send, and this connection's
            // end, forever.
            set_send_timeout(fd_.get(), kByeTimeoutMs);
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
                receiver_.read_from(
                    [tls = tls_.get()](std::uint8_t* buf, std::size_t len) { return tls->recv_some(buf, len); });
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
        // Declared after end_ring, so it ends before: every reply of the
        // connection is sent (or the socket broke) before the ring goes.
        struct ReplyThread {
            NbdConnection& conn;
            std::thread thread;
            ~ReplyThread() {
                if (!thread.joinable()) return;
                // The readers have ended (DISC, an error): a client that
                // still leaves its replies unread is cut off after a while,
                // or it would hold this connection, and a reload or demotion
                // waiting for it, for as long as it likes.
                conn.wait_idle(kUnreadRepliesAfterEnd);
                {
                    std::lock_guard lock(conn.out_mu_);
                    conn.reply_thread_stop_ = true;
                }
                conn.out_cv_.notify_all();
                thread.join();
            }
        } reply_thread{*this, {}};
        try {
            reply_thread.thread = std::thread([this] {
                name_thread("nbd-reply");
                reply_loop();
            });
            has_reply_thread_ = true;
        } catch (const std::system_error& e) {
            log(std::string("no reply thread, replies from other threads may wait: ") + e.what());
        }
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
            // What this thread queued goes to the kernel first in any case: a
            // large write's activity-log commit and copy to the peer must not
            // hold back a read queued before it.
            submit();
            if (last_may_block_ || request_waiting()) read_lock.unlock();
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
    // With `unread_bound`: once replies wait to be sent and none has moved
    // for that long (the client reads nothing), the socket is shut down and
    // the rest are dropped (requests still running complete as usual; only
    // their replies go nowhere). A client still reading, however slowly,
    // or requests still running, are waited for.
    void wait_idle(std::chrono::milliseconds unread_bound = std::chrono::milliseconds::zero()) {
        auto last_move = std::chrono::steady_clock::now();
        std::uint64_t last_sent = 0;
        bool cut = false;
        std::unique_lock lock(inflight_mu_);
        while (inflight_ != 0) {
            lock.unlock();
            submit();
            if (unread_bound.count() && !cut) {
                std::lock_guard out(out_mu_);
                const auto now = std::chrono::steady_clock::now();
                const std::uint64_t sent = bytes_out_;
                if (outbox_.empty() || sent != last_sent) {
                    last_sent = sent;
                    last_move = now;
                } else if (now - last_move >= unread_bound) {
                    cut = true;
                    log("closing: the client left its replies unread for " +
                        std::to_string(unread_bound.count() / 1000) + " s after it ended");
                    ::shutdown(fd_.get(), SHUT_RDWR);  // the blocked send fails: the rest are dropped
                }
            }
            lock.lock();
            inflight_cv_.wait_for(lock, std::chrono::milliseconds(20), [this] { return inflight_ == 0; });
        }
    }
    // Called with read_mu_ held.
    void submit_unless_more_waiting() {
        if (!request_waiting()) submit();
    }

    // Called with read_mu_ held. A whole request header, not just some
    // bytes: a reader that skips its submit for a partial one then blocks
    // on the rest, and what it queued waits with it (holding its range
    // lock, the resync and verify of that region, the activity log's
    // retirement) for as long as the client takes, or forever.
    bool request_waiting() const { return bytes_waiting() >= nbd::kRequestSize; }
    // Bytes of the next requests that can be read without blocking. With
    // TLS only what is decrypted counts: the socket may hold part of a
    // record, which cannot be read until the rest arrives.
    std::size_t bytes_waiting() const {
        std::size_t n = receiver_.buffered();
        if (tls_) return n + tls_->pending();
        int bytes = 0;
        if (::ioctl(fd_.get(), FIONREAD, &bytes) == 0 && bytes > 0) n += static_cast<std::size_t>(bytes);
        return n;
    }

    // Reads and orders one request. The outer optional is empty when the
    // connection must end; the function inside is the work to run (empty if
    // it was answered already or queued behind an overlapping write).
    std::optional<std::function<void()>> read_one() {
        std::array<std::uint8_t, nbd::kRequestSize> hdr;
        // Entries the kernel did not take at the last submit (memory
        // pressure) must not wait for the client's next request, which may
        // only come once they are answered: retried every 20 ms until taken
        // or a whole request is here (with part of one, the read below would
        // block on the rest while the entries wait), or the client is gone
        // (the read below sees that and ends the connection).
        while (ring_ && ring_->queued() && !request_waiting()) {
            submit();
            if (!ring_->queued()) break;
            // New bytes end the wait, unless some are there already (part of
            // a request, or with TLS maybe a whole one still encrypted,
            // which is read once the entries are taken): then POLLIN would
            // not wait at all.
            int raw = 0;
            ::ioctl(fd_.get(), FIONREAD, &raw);
            const bool nothing_there = raw <= 0 && bytes_waiting() == 0;
            pollfd pfd{fd_.get(), static_cast<short>(POLLRDHUP | (nothing_there ? POLLIN : 0)), 0};
            if (::poll(&pfd, 1, 20) > 0 && (pfd.revents & (POLLHUP | POLLERR | POLLRDHUP))) break;
        }
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
        // A refused READ needs no buffer; a refused WRITE's payload is read
        // all the same (it is within the maximum, or the connection ended).
        const bool has_buffer = req->type == nbd::CommandType::Write ||
                                (req->type == nbd::CommandType::Read && check.verdict == nbd::Verdict::Serve);
        // A slot, and room for the buffer, before the buffer: each request
        // holds both until its reply is sent (or the socket broke), so a
        // client that stops reading its replies stops being read, and what
        // it holds stays bounded.
        const std::size_t bytes = has_buffer ? req->length : 0;
        bool alone;
        {
            std::unique_lock lock(inflight_mu_);
            auto room = [&] {
                return inflight_ < NbdServer::kMaxInFlight &&
                       (inflight_bytes_ == 0 || inflight_bytes_ + bytes <= kMaxInFlightBytes);
            };
            // What waits to be submitted must complete to free a slot; a
            // submit the kernel took only in part (memory pressure) is
            // tried again while waiting, as wait_idle does.
            while (!room()) {
                lock.unlock();
                submit();
                lock.lock();
                inflight_cv_.wait_for(lock, std::chrono::milliseconds(20), room);
            }
            alone = inflight_++ == 0;
            inflight_bytes_ += bytes;
        }
        std::shared_ptr<AlignedBuffer> buf;
        if (has_buffer) {
            try {
                buf = std::make_shared<AlignedBuffer>(req->length);
            } catch (const std::bad_alloc&) {
                log("closing: no memory for a request of " + std::to_string(req->length) + " bytes");
                release(1, bytes);
                return std::nullopt;
            }
        }
        if (req->type == nbd::CommandType::Write) {
            // What this thread queued goes to the kernel before it may wait
            // for a payload still on its way.
            if (ring_ && ring_->queued() && bytes_waiting() < req->length) submit();
            if (auto st = receiver_.read_full(buf->span()); !st) {
                log("reading write payload: " + st.error().message);
                release(1, bytes);
                return std::nullopt;
            }
        }
        if (check.verdict == nbd::Verdict::ReplyError) {
            send_reply(req->handle, check.error, nullptr, 0, bytes);
            return std::function<void()>{};
        }
        // Alone (nothing in flight, nothing waiting, a client at queue depth
        // 1): this thread does the I/O the blocking way and answers. Through
        // the ring the completion thread would wake to answer (measured: 4
        // KiB QD1 writes, one replica, 10.4k against 12.1k IOPS).
        const bool blocking = alone && last_is_queued_ && !request_waiting();
        if (blocking) last_is_queued_ = false;
        auto op = to_op(*req, buf);
        op.ring = blocking ? nullptr : ring_.get();
        return volume_.submit_inline(std::move(op), [self = shared_from_this(), handle = req->handle,
                                                     is_read = req->type == nbd::CommandType::Read, len = req->length,
                                                     bytes](int err, std::shared_ptr<AlignedBuffer> data) {
            self->send_reply(handle, nbd::wire_error(err), (is_read && !err) ? std::move(data) : nullptr, len, bytes);
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

    // Replies leave in the order they are queued, several in one send when
    // they queue up while one is sent. Whoever finds nobody sending sends;
    // the others only queue. Only the connection's reply thread ever waits
    // for the client. The peer link's ack receiver would stall every
    // volume's acks; the ring's completion thread would leave the
    // completions behind it unhandled, and with them the range locks of
    // writes that are done (another client's overlapping write, a resync of
    // the region, would wait for as long as this client reads nothing); a
    // reader would read no more, not even the DISC after which a client
    // that reads nothing is cut off. So they send without blocking and
    // leave what does not fit (or, with TLS, everything) to the reply
    // thread. `reserved` is the request's buffer bytes, released with its
    // slot once the reply is out.
    void send_reply(std::uint64_t handle, std::uint32_t error, std::shared_ptr<AlignedBuffer> data, std::size_t len,
                    std::size_t reserved) {
        Reply r{nbd::encode_simple_reply(error, handle), std::move(data), 0, reserved};
        if (r.data) r.length = len;
        std::unique_lock lock(out_mu_);
        outbox_.push_back(std::move(r));
        if (sending_) return;
        sending_ = true;
        drain(lock, !has_reply_thread_);
    }

    // Called with out_mu_ held and sending_ set by this thread; returns with
    // sending_ cleared, or handed to the reply thread.
    void drain(std::unique_lock<std::mutex>& lock, bool may_block) {
        while (!outbox_.empty()) {
            if (broken_) {
                // Nobody will read them: drop them, freeing their slots.
                unsigned count = 0;
                std::size_t bytes = 0;
                for (auto& r : outbox_) ++count, bytes += r.reserved;
                outbox_.clear();
                front_sent_ = 0;
                release(count, bytes);
                break;
            }
            // A TLS record cannot be sent in part without blocking.
            if (!may_block && tls_) {
                hand_off(lock);
                return;
            }
            struct iovec iov[2 * kMaxRepliesPerSend];
            int n = 0;
            std::size_t skip = front_sent_;
            for (auto it = outbox_.begin(); it != outbox_.end() && n + 2 <= 2 * kMaxRepliesPerSend; ++it) {
                std::span<const std::uint8_t> parts[2] = {
                    {it->header.data(), it->header.size()},
                    {it->data ? it->data->data() : nullptr, it->data ? it->length : 0}};
                for (auto part : parts) {
                    if (skip >= part.size()) {
                        skip -= part.size();
                        continue;
                    }
                    iov[n++] = {const_cast<std::uint8_t*>(part.data()) + skip, part.size() - skip};
                    skip = 0;
                }
            }
            lock.unlock();
            ssize_t sent;
            int err = 0;
            if (tls_) {
                auto st = tls_->writev_full(iov, n, &bytes_out_);
                sent = st ? static_cast<ssize_t>(total(iov, n)) : -1;
                if (!st) err = st.error().code ? st.error().code : EIO;
            } else {
                struct msghdr msg {};
                msg.msg_iov = iov;
                msg.msg_iovlen = static_cast<std::size_t>(n);
                // Never a blocking send: it returns only once all of it is
                // out, so a client reading slowly would show no progress
                // until then, and the cut-off for one that reads nothing
                // (wait_idle) would take the one for the other. Waiting
                // for room instead, each part that leaves counts.
                for (;;) {
                    sent = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
                    err = errno;
                    if (sent >= 0 || !may_block || (err != EAGAIN && err != EWOULDBLOCK && err != EINTR)) break;
                    pollfd pfd{fd_.get(), POLLOUT, 0};
                    ::poll(&pfd, 1, -1);  // ends with room, or a shutdown (the end, or the cut-off)
                }
                if (sent > 0) bytes_out_ += static_cast<std::uint64_t>(sent);
            }
            lock.lock();
            if (sent < 0) {
                if (err == EINTR) continue;
                if (err == EAGAIN || err == EWOULDBLOCK) {
                    hand_off(lock);  // the client is slow to read: its own thread waits for it
                    return;
                }
                broken_ = true;
                ::shutdown(fd_.get(), SHUT_RDWR);  // the reader sees it and ends
                continue;
            }
            unsigned count = 0;
            std::size_t bytes = 0;
            std::size_t left = front_sent_ + static_cast<std::size_t>(sent);
            while (!outbox_.empty()) {
                auto& r = outbox_.front();
                const std::size_t size = r.header.size() + (r.data ? r.length : 0);
                if (left < size) break;
                left -= size;
                ++count;
                bytes += r.reserved;
                outbox_.pop_front();
            }
            front_sent_ = left;
            if (count) release(count, bytes);
        }
        sending_ = false;
    }

    // The reply thread takes over sending (sending_ stays set for it).
    // Without one (none could be started), callers block instead and never
    // get here; should one still, the connection ends rather than leave
    // sending_ set with nobody sending.
    void hand_off(std::unique_lock<std::mutex>& lock) {
        if (!has_reply_thread_) {
            broken_ = true;
            ::shutdown(fd_.get(), SHUT_RDWR);
            drain(lock, true);  // drops the outbox, clears sending_
            return;
        }
        handed_off_ = true;
        out_cv_.notify_all();
    }

    void reply_loop() {
        std::unique_lock lock(out_mu_);
        for (;;) {
            out_cv_.wait(lock, [this] { return handed_off_ || reply_thread_stop_; });
            if (handed_off_) {
                handed_off_ = false;
                drain(lock, true);
                continue;
            }
            return;
        }
    }

    static std::size_t total(const struct iovec* iov, int n) {
        std::size_t t = 0;
        for (int i = 0; i < n; ++i) t += iov[i].iov_len;
        return t;
    }

    void release(unsigned count, std::size_t bytes) {
        std::lock_guard lock(inflight_mu_);
        inflight_ -= count;
        inflight_bytes_ -= bytes;
        inflight_cv_.notify_all();
    }

    const bool tcp_;
    UniqueFd fd_;
    const nbd::ExportInfo& export_;
    Volume& volume_;
    const std::shared_ptr<const TlsCredentials> tls_credentials_;  // null: no TLS on this connection
    nbd::Tls tls_mode_;                                            // the handshake's thread only
    std::unique_ptr<TlsSession> tls_;  // set in the handshake, before any other thread of this connection
    std::thread thread_;
    std::atomic<bool> finished_{false};
    std::mutex read_mu_;
    BufferedReceiver receiver_{fd_.get()};  // transmission phase only, under read_mu_
    bool last_may_block_ = false;           // the request read last (under read_mu_)
    bool last_is_queued_ = false;           // ... is a read the ring takes (under read_mu_)
    std::unique_ptr<IoRing> ring_;          // set before the threads start, reset after they end
    bool closed_ = false;
    struct Reply {
        std::array<std::uint8_t, nbd::kSimpleReplySize> header;
        std::shared_ptr<AlignedBuffer> data;  // a read's payload, or null
        std::size_t length = 0;               // of data, sent after the header
        std::size_t reserved = 0;             // the request's bytes in inflight_bytes_
    };
    std::mutex out_mu_;                        // the outbox; never held while sending
    std::condition_variable out_cv_;           // the reply thread's
    std::deque<Reply> outbox_;                 // under out_mu_
    std::size_t front_sent_ = 0;               // bytes of outbox_.front() already sent
    std::atomic<std::uint64_t> bytes_out_{0};  // of replies, ever, counted as they leave: progress
    bool sending_ = false;                     // a thread is sending the outbox (under out_mu_)
    bool handed_off_ = false;                  // ... and it is the reply thread's turn
    bool reply_thread_stop_ = false;
    bool has_reply_thread_ = false;  // set before the readers start
    bool broken_ = false;            // the socket failed: replies are dropped
    std::mutex inflight_mu_;
    std::condition_variable inflight_cv_;
    unsigned inflight_ = 0;
    std::size_t inflight_bytes_ = 0;
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
    UniqueFd fd = accept_client(listen_fd, "NBD");
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
    auto conn = std::make_shared<NbdConnection>(std::move(fd), export_, volume_, tcp, tcp ? tls_credentials_ : nullptr);
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
