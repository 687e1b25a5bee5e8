#include "sanagent/replicator/peer_link.h"

#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>

#include "sanagent/replicator/crc32c.h"
#include "sanagent/replicator/net.h"
#include "sanagent/replicator/peer_auth.h"
#include "sanagent/replicator/peer_io.h"
#include "sanagent/replicator/thread_name.h"

namespace sanagent::replicator {

namespace {
using Clock = std::chrono::steady_clock;
constexpr std::uint64_t kMaxRunBytes = 1 << 20;
// One daemon serves many volumes: every line names its volume.
void log(const std::string& volume, const std::string& s) {
    std::fprintf(stderr, "sanrepd: %s: peer: %s\n", volume.c_str(), s.c_str());
}
}  // namespace

std::string_view to_string(PeerState s) {
    switch (s) {
        case PeerState::Connecting:
            return "connecting";
        case PeerState::InSync:
            return "in-sync";
        case PeerState::Resyncing:
            return "resyncing";
        case PeerState::OutOfSync:
            return "out-of-sync";
        case PeerState::SplitBrain:
            return "split-brain";
        case PeerState::PeerNewer:
            return "peer-newer";
        case PeerState::Unrelated:
            return "unrelated";
        case PeerState::Refused:
            return "refused";
    }
    return "unknown";
}

// One TCP connection to the peer: sends with increasing seq, a receiver
// thread matching acks to callbacks, and a watchdog on the oldest unacked op.
class PeerLink::Session {
public:
    using Callback = std::function<void(int error)>;

    Session(UniqueFd fd, int ack_timeout_ms, std::string volume)
        : fd_(std::move(fd)), ack_timeout_ms_(ack_timeout_ms), volume_(std::move(volume)) {
        set_recv_timeout(fd_.get(), 250);  // the watchdog's tick
        receiver_ = std::thread([this] {
            name_thread("peer-recv");
            receive_loop();
        });
    }
    ~Session() {
        kill();
        receiver_.join();
    }

    // Calls cb exactly once: with the peer's ack, or with an error.
    // A VERIFY's answer carries a checksum: `on_digest` gets it before `cb(0)`.
    void send(peer::Type type, std::uint16_t flags, std::span<const std::uint8_t> body, Callback cb,
              std::shared_ptr<AlignedBuffer> write_data = nullptr, std::uint64_t write_offset = 0,
              std::size_t write_length = 0, std::function<void(std::uint32_t)> on_digest = nullptr) {
        std::unique_lock send_lock(send_mu_);
        std::uint64_t seq = 0;
        bool dead;
        {
            std::lock_guard lock(pend_mu_);
            dead = dead_;
            if (!dead) {
                seq = next_seq_++;
                // The secondary answers a RESYNC_DONE only after an fdatasync,
                // like a FLUSH: both make every earlier op durable there.
                pending_.emplace(seq, Pending{std::move(cb), std::move(on_digest), Clock::now(),
                                              type == peer::Type::Flush || type == peer::Type::ResyncDone});
                note_unflushed(type, flags, seq, body, write_offset, write_length);
            }
        }
        // A dead session fails the op with neither lock held: a callback
        // takes locks of its own (a resync's or a verify's), whose holders
        // ask dead() under them. Called under pend_mu_, it was a lock-order
        // inversion that could hang the volume when the link dropped
        // during a resync.
        if (dead) {
            send_lock.unlock();
            cb(ECONNRESET);
            return;
        }
        Status st = type == peer::Type::Write
                        ? peer::send_write(fd_.get(), flags, seq, write_offset, write_data->span().first(write_length))
                        : peer::send(fd_.get(), type, flags, seq, body);
        if (!st) kill();  // the receiver fails every pending callback, this one included
    }

    void kill() { ::shutdown(fd_.get(), SHUT_RDWR); }
    // Once dead: the ranges the peer may have acknowledged without making
    // them durable (no later FLUSH of this session was acknowledged). A peer
    // that lost power may have lost them, so they are resynced.
    std::vector<peer::Range> unflushed() const {
        std::lock_guard lock(pend_mu_);
        std::vector<peer::Range> out;
        for (const auto& u : unflushed_) out.push_back(u.range);
        return out;
    }
    bool dead() const {
        std::lock_guard lock(pend_mu_);
        return dead_;
    }
    // After kill(): the receiver fails every pending op and ends within one
    // watchdog tick; bounded all the same. Returns once the failed ops'
    // callbacks have run (and recorded their ranges), not just once the
    // session is dead: the next handshake reads the bitmap they write.
    void wait_dead() {
        std::unique_lock lock(pend_mu_);
        dead_cv_.wait_for(lock, std::chrono::seconds(10), [this] { return settled_; });
    }
    void wait_dead_for(const std::atomic<bool>& stopping, std::chrono::milliseconds bound) {
        auto until = Clock::now() + bound;
        std::unique_lock lock(pend_mu_);
        while (!dead_ && !stopping && Clock::now() < until) dead_cv_.wait_for(lock, std::chrono::milliseconds(200));
    }

private:
    struct Pending {
        Callback cb;
        std::function<void(std::uint32_t)> on_digest;
        Clock::time_point sent;
        bool flush = false;
    };
    struct Unflushed {
        std::uint64_t seq;
        peer::Range range;
    };
    // Bounded: past this many ranges, a new one widens the newest to cover
    // both (a superset only costs a larger resync after a link loss).
    static constexpr std::size_t kMaxUnflushed = 4096;

    // Under pend_mu_ and send_mu_, so the list is in seq (wire) order. A FUA
    // write is durable when acked; flushes, verifies and reads change nothing.
    void note_unflushed(peer::Type type, std::uint16_t flags, std::uint64_t seq, std::span<const std::uint8_t> body,
                        std::uint64_t write_offset, std::size_t write_length) {
        peer::Range r;
        if (type == peer::Type::Write) {
            r = {write_offset, write_length};
        } else if (type == peer::Type::Zero || type == peer::Type::Trim) {
            auto decoded = peer::decode_range(body);
            if (!decoded) return;
            r = *decoded;
        } else {
            return;
        }
        if ((flags & peer::kFlagFua) || r.length == 0) return;
        if (unflushed_.size() < kMaxUnflushed) {
            unflushed_.push_back({seq, r});
            return;
        }
        auto& last = unflushed_.back();
        std::uint64_t lo = std::min(last.range.offset, r.offset);
        std::uint64_t hi = std::max(last.range.offset + last.range.length, r.offset + r.length);
        last = {seq, {lo, hi - lo}};
    }

    // A FLUSH the peer acknowledged made every op sent before it durable.
    void flushed_before(std::uint64_t flush_seq) {
        while (!unflushed_.empty() && unflushed_.front().seq < flush_seq) unflushed_.pop_front();
    }

    void receive_loop() {
        std::string why;
        peer::Reader reader(fd_.get());
        for (;;) {
            auto m = reader.receive();
            if (!m) {
                // The watchdog's tick: the reader keeps a half-received
                // message, so the stream stays framed across it.
                if (m.error().code == EAGAIN || m.error().code == EWOULDBLOCK) {
                    if (overdue()) {
                        why = "no ack within " + std::to_string(ack_timeout_ms_) + " ms";
                        break;
                    }
                    continue;
                }
                why = m.error().message;
                break;
            }
            Result<std::int32_t> err = 0;
            std::uint32_t digest = 0;
            if (m->header.type == peer::Type::Ack) {
                err = peer::decode_ack(m->body);
            } else if (m->header.type == peer::Type::Digest) {
                auto d = peer::decode_digest(m->body);
                if (d) {
                    err = d->error;
                    digest = d->crc;
                } else {
                    err = d.error();
                }
            } else {
                why = "unexpected message type " + std::to_string(static_cast<int>(m->header.type));
                break;
            }
            if (!err) {
                why = err.error().message;
                break;
            }
            Callback cb;
            std::function<void(std::uint32_t)> on_digest;
            {
                std::lock_guard lock(pend_mu_);
                auto it = pending_.find(m->header.seq);
                if (it == pending_.end()) {
                    why = "ack for unknown seq " + std::to_string(m->header.seq);
                    break;
                }
                if ((m->header.type == peer::Type::Digest) != bool(it->second.on_digest)) {
                    why = "answer of the wrong type for seq " + std::to_string(m->header.seq);
                    break;
                }
                cb = std::move(it->second.cb);
                on_digest = std::move(it->second.on_digest);
                if (it->second.flush && *err == 0) flushed_before(m->header.seq);
                // The next op's wait counts from here: time it spent queued
                // behind earlier ones (a slow async peer's backlog) is no
                // sign of a stuck op.
                if (it == pending_.begin()) head_since_ = Clock::now();
                pending_.erase(it);
                // The watchdog under traffic too: acks of later ops must not
                // hide one the peer never answers (a write stuck in its disk).
                if (overdue_locked()) why = "no ack within " + std::to_string(ack_timeout_ms_) + " ms";
            }
            if (on_digest && *err == 0) on_digest(digest);
            if (*err != 0) {
                // The peer could not apply it: its copy is now behind.
                cb(*err);
                why = std::string("peer failed an op: ") + std::strerror(*err);
                break;
            }
            cb(0);
            if (!why.empty()) break;
        }
        kill();
        std::map<std::uint64_t, Pending> failed;
        {
            std::lock_guard lock(pend_mu_);
            dead_ = true;
            failed.swap(pending_);
        }
        if (!why.empty()) log(volume_, "link down: " + why);
        for (auto& [seq, p] : failed) p.cb(ECONNRESET);
        {
            std::lock_guard lock(pend_mu_);
            settled_ = true;
        }
        dead_cv_.notify_all();
    }

    bool overdue() const {
        std::lock_guard lock(pend_mu_);
        return overdue_locked();
    }
    bool overdue_locked() const {
        return !pending_.empty() && Clock::now() - std::max(pending_.begin()->second.sent, head_since_) >
                                        std::chrono::milliseconds(ack_timeout_ms_);
    }

    UniqueFd fd_;
    int ack_timeout_ms_;
    std::string volume_;
    std::mutex send_mu_;
    mutable std::mutex pend_mu_;
    std::condition_variable dead_cv_;
    std::map<std::uint64_t, Pending> pending_;
    std::deque<Unflushed> unflushed_;  // under pend_mu_
    std::uint64_t next_seq_ = 1;
    Clock::time_point head_since_{};  // when the oldest pending op became the oldest (under pend_mu_)
    bool dead_ = false;
    bool settled_ = false;  // dead, and every op pending then has had its callback
    std::thread receiver_;
};

PeerLink::PeerLink(PeerLinkOptions options, Volume& volume, MetadataFile& meta, WorkerPool& pool)
    : options_(std::move(options)), volume_(volume), meta_(meta), pool_(pool) {}

PeerLink::~PeerLink() {
    stop();
}

void PeerLink::start() {
    // Extents left active by a crash may differ between the replicas: they
    // become dirty (starting a new generation), so the peer gets a bitmap
    // resync of just those extents.
    auto active = meta_.active_ranges();
    if (!active.empty()) {
        log(options_.volume, "activity log holds " + std::to_string(active.size()) +
                                 " extents from an unclean stop: marking them for resync");
        bool recorded = true;
        for (auto [off, len] : active) recorded = record_dirty(off, len) && recorded;
        // The log is the only record of those extents until the bits are on disk.
        if (recorded) {
            if (auto r = meta_.retire_activity(meta_.activity_epoch()); !r) log(options_.volume, r.error().message);
        }
    }
    if (options_.async) {
        {
            std::lock_guard lock(ship_mu_);
            shipping_ = true;
        }
        shipper_ = std::thread([this] {
            name_thread("peer-ship");
            ship_loop();
        });
    }
    manager_ = std::thread([this] {
        name_thread("peer-link");
        manage();
    });
}

void PeerLink::ship(std::function<void()> send) {
    {
        std::lock_guard lock(ship_mu_);
        if (shipping_ && !stopping_) {
            ship_queue_.push_back(std::move(send));
            ship_cv_.notify_all();
            return;
        }
    }
    send();  // sync mode, or stopping: the session is dead and the send fails at once
}

void PeerLink::ship_loop() {
    // One thread sends every queued op in order; a send blocks while the
    // socket is full, which is what lets the lag build up to max_lag. On stop
    // it drains the queue: the sends fail at once and record their ranges.
    std::unique_lock lock(ship_mu_);
    for (;;) {
        ship_cv_.wait(lock, [this] { return !ship_queue_.empty() || stopping_; });
        if (ship_queue_.empty()) return;
        auto send = std::move(ship_queue_.front());
        ship_queue_.pop_front();
        lock.unlock();
        send();
        // Destroyed before relocking: it may hold the last reference to a
        // dead session, whose destructor joins a receiver that needs ship_mu_.
        send = nullptr;
        lock.lock();
        ship_cv_.notify_all();  // wait_shipped
    }
}

int PeerLink::send_and_wait(const std::shared_ptr<Session>& s, int type, std::vector<std::uint8_t> body) {
    std::mutex mu;
    std::condition_variable cv;
    int result = -1;
    // Through the shipper in async mode: a FLUSH or RESYNC_DONE must not
    // overtake the writes queued before it.
    ship([&, s, type, body = std::move(body)] {
        s->send(static_cast<peer::Type>(type), 0, body, [&](int err) {
            std::lock_guard lock(mu);
            result = err;
            cv.notify_all();
        });
    });
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return result >= 0; });  // bounded: the session's ack watchdog fails it
    return result;
}

void PeerLink::drop_newer_link(const std::weak_ptr<Session>& origin) {
    // An op normally fails with its session, and the next handshake sees its
    // range in the bitmap. But one whose sender was held up (in an
    // activity-log commit, say) while the link was replaced fails on the
    // dead session only after the new link came up, and the peer never gets
    // it: that link must go too, so that its reconnect resyncs the range.
    std::shared_ptr<Session> current;
    {
        std::lock_guard lock(state_mu_);
        current = session_;
    }
    // Compared by owner, without locking `origin`: this may run on origin's
    // own receiver thread, which must never hold its session's last reference.
    if (!current || (!origin.owner_before(current) && !current.owner_before(origin))) return;
    log(options_.volume, "an op failed on an earlier link after this one came up: reconnecting to resync it");
    current->kill();
}

void PeerLink::retire_activity(const std::shared_ptr<Session>& s) {
    // The epoch before the idle check: a write holds its range lock from
    // before it activates until it completes on both sides, so either it is
    // seen here, or it activates later and changes the epoch. (Read after the
    // check, a write activating in between would be retired while in flight.)
    auto epoch = meta_.activity_epoch();
    if (meta_.active_ranges().empty() || volume_.range_lock().size() != 0) return;
    // Then make every write completed so far durable on both sides; the log
    // is cleared only if no write activated meanwhile.
    if (!volume_.replica().flush()) return;
    if (send_and_wait(s, static_cast<int>(peer::Type::Flush), {}) != 0) return;
    if (auto r = meta_.retire_activity(epoch); !r) log(options_.volume, r.error().message);
}

void PeerLink::stop() {
    std::shared_ptr<Session> s;
    bool in_sync;
    {
        std::lock_guard lock(state_mu_);
        s = session_;
        in_sync = state_ == PeerState::InSync;
    }
    // A clean stop leaves the peer's copy durable: otherwise the writes it
    // acknowledged since the last FLUSH are marked for resync (end_session),
    // and resent at the next connect. Bounded by the ack timeout.
    if (s && in_sync && !s->dead() && !stopping_) {
        // In sync mode with nothing in flight (the NBD server stopped first)
        // every write is on both replicas: once both are flushed the activity
        // log is cleared too, so a restart, or this node's HELLO after a
        // demotion, lists no extents to resync. (Async: the shipper may
        // still hold writes the peer lacks.)
        auto epoch = meta_.activity_epoch();
        const bool idle = !options_.async && volume_.range_lock().size() == 0;
        const bool local = idle && volume_.replica().flush().ok();
        if (int err = send_and_wait(s, static_cast<int>(peer::Type::Flush), {}); err != 0) {
            log(options_.volume, std::string("final flush of the peer failed: ") + std::strerror(err));
        } else if (local && !meta_.active_ranges().empty()) {
            if (auto r = meta_.retire_activity(epoch); !r) log(options_.volume, r.error().message);
        }
    }
    {
        // Under the waiter's mutex: set between its check and its wait, the
        // flag would otherwise go unseen until the pause ran out.
        std::lock_guard lock(pause_mu_);
        stopping_ = true;
    }
    pause_cv_.notify_all();
    if (s) s->kill();
    if (manager_.joinable()) manager_.join();
    {
        // From here ship() sends inline (to a dead session: the send fails
        // at once) and the shipper drains what is queued, then ends.
        std::lock_guard lock(ship_mu_);
        shipping_ = false;
        ship_cv_.notify_all();
    }
    if (shipper_.joinable()) shipper_.join();
    if (verifier_.joinable()) verifier_.join();
    // A clean stop leaves the bitmap whole on disk.
    if (auto st = meta_.flush_bitmap(); !st) log(options_.volume, st.error().message);
    // Destroyed outside state_mu_: a session's end joins its receiver,
    // whose failing callbacks may take state_mu_ (drop_newer_link).
    std::shared_ptr<Session> last;
    std::lock_guard lock(state_mu_);
    last.swap(session_);
}

void PeerLink::retire_while_away() {
    // With no peer every write is in the bitmap, and the log only covers the
    // bits not yet on disk: retire_activity() writes them first, then clears
    // the log. Epoch first, as in retire_activity().
    // The log also covers writes the last link shipped that the peer has
    // flushed but this replica may not have (a resync's or a verify's FLUSH
    // ends the session's unflushed list): they are in no bitmap. A local
    // flush first, or a power cut could lose them here, unrecorded, while
    // the peer keeps them.
    auto epoch = meta_.activity_epoch();
    if (meta_.active_ranges().empty() || volume_.range_lock().size() != 0) return;
    if (auto st = volume_.replica().flush(); !st) {
        log(options_.volume, "activity log kept: " + st.error().message);
        return;
    }
    if (auto r = meta_.retire_activity(epoch); !r) log(options_.volume, r.error().message);
}

void PeerLink::pause(int ms) {
    std::unique_lock lock(pause_mu_);
    pause_cv_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stopping_.load(); });
}

void PeerLink::set_state(PeerState s, const std::string& detail) {
    std::lock_guard lock(state_mu_);
    if (s != state_)
        log(options_.volume, std::string(to_string(state_)) + " -> " + std::string(to_string(s)) +
                                 (detail.empty() ? "" : ": " + detail));
    state_ = s;
    detail_ = detail;
}

PeerStatus PeerLink::status() const {
    std::lock_guard lock(state_mu_);
    PeerStatus st;
    st.state = state_;
    st.detail = detail_;
    st.resync_total = resync_total_.load();
    st.resync_done = resync_done_.load();
    st.resync_bytes = resync_bytes_.load();
    st.lag_bytes = lag_bytes_.load();
    st.lag_ops = lag_ops_.load();
    if (auto started = resync_started_ns_.load()) {
        auto ended = resync_ended_ns_.load();
        auto until = ended ? ended : Clock::now().time_since_epoch().count();
        st.resync_ms = static_cast<std::uint64_t>(std::max<std::int64_t>(0, until - started) / 1'000'000);
    }
    return st;
}

bool PeerLink::record_dirty(std::uint64_t offset, std::uint64_t length, bool new_generation) {
    // The activity log makes the range durable (an fdatasync per new 4 MiB
    // extent, shared by concurrent writes); the bitmap bit follows lazily,
    // since after a crash start() turns every active extent into dirty bits.
    // Measured at 4 KiB random writes with the peer away: one fdatasync per
    // new 64 KiB region before this.
    return wait_recorded(meta_.record_missed(offset, length, new_generation));
}

bool PeerLink::open_generation_for_flush() {
    if (auto st = meta_.open_generation(true); !st) {
        volume_.fail("cannot start a generation in " + meta_.path() + ": " + st.error().message);
        return false;
    }
    return true;
}

bool PeerLink::wait_recorded(const Result<std::uint64_t>& change) {
    Status st = change ? meta_.wait_activity(*change) : Status(change.error());
    if (st) return true;
    // Without the record a later resync would miss this range: silent
    // divergence. The volume stops taking writes instead; the daemon's
    // other volumes go on. What was activated before stays in the log on
    // disk and becomes dirty bits at the next start.
    volume_.fail("cannot record a dirty range in " + meta_.path() + ": " + st.error().message);
    return false;
}

bool PeerLink::reserve_lag(std::uint64_t cost) {
    // Check and add in one step: concurrent writers cannot pass max_lag
    // together. With nothing lagging, any write goes, so one larger than
    // max_lag is shipped rather than dropping the link every time; the lag
    // may then pass max_lag, and ops that add none (FLUSH, TRIM, ZERO)
    // still go.
    auto lag = lag_bytes_.load();
    do {
        if (cost != 0 && lag != 0 && lag + cost > options_.max_lag) return false;
    } while (!lag_bytes_.compare_exchange_weak(lag, lag + cost));
    return true;
}

Status PeerLink::replicate(const Op& op, std::function<void(int error)> done) {
    if (op.type == OpType::Read) {
        done(0);
        return {};
    }
    std::shared_ptr<Session> s;
    Result<std::uint64_t> missed = std::uint64_t{0};
    {
        // Deciding and marking under state_mu_: once the manager switches to
        // resyncing, every range marked before is in the bitmap it scans.
        std::lock_guard lock(state_mu_);
        if ((state_ == PeerState::InSync || state_ == PeerState::Resyncing) && session_) {
            s = session_;
        } else if (op.type != OpType::Flush) {
            missed = meta_.record_missed(op.offset, op.length);
        }
    }
    if (!s) {
        // Durable before the local write, but waited for outside state_mu_:
        // concurrent degraded writes then share one activity-log commit.
        if (!wait_recorded(missed)) return Error{EIO, volume_.failure()};
        // A FLUSH answered without the peer makes writes durable here that
        // the peer may have lost (acked, never flushed there: the marked
        // ranges of the last link): this replica has moved on, which its
        // generation must say, or a failover to the peer would overwrite
        // them here without a word.
        if (op.type == OpType::Flush && !open_generation_for_flush()) return Error{EIO, volume_.failure()};
        done(0);
        return {};
    }
    const bool async = options_.async;
    const std::uint64_t cost = op.type == OpType::Write ? op.length : 0;
    if (async && !reserve_lag(cost)) {
        // Past the bound: this op is not shipped. Its range goes to the bitmap
        // (durably, before the local write) and the link is dropped, so the
        // peer turns out-of-sync and gets a bitmap resync when it reconnects.
        if (op.type != OpType::Flush && !record_dirty(op.offset, op.length)) return Error{EIO, volume_.failure()};
        if (!s->dead())
            log(options_.volume, "async lag would pass max_lag (" + std::to_string(options_.max_lag) +
                                     " bytes): dropping the link, tracking writes in the bitmap");
        s->kill();
        drop_newer_link(s);  // if s died and a new link came up before the range was marked
        done(0);
        return {};
    }
    if (op.type != OpType::Flush) {
        // The activity log first: if this node dies with the op in flight,
        // its extent is where the replicas may differ. Without it, the op is
        // neither sent nor written.
        if (auto st = meta_.activate(op.offset, op.length); !st) {
            if (async) lag_bytes_ -= cost;
            volume_.fail("cannot record activity in " + meta_.path() + ": " + st.error().message);
            return Error{EIO, volume_.failure()};
        }
    }
    if (async) ++lag_ops_;
    std::function<void(int)> on_acked = async ? nullptr : std::move(done);
    // The session calls cb, so `sender` is alive while it runs (a weak or
    // shared pointer here could drop its last reference on its own thread).
    auto cb = [this, async, cost, type = op.type, offset = op.offset, length = op.length,
               on_acked = std::move(on_acked), origin = std::weak_ptr<Session>(s), sender = s.get()](int err) {
        // The peer lost this op: recorded, it is resynced; if it cannot be
        // (the metadata failed, and with it the volume), the op is answered
        // EIO, not as a success the replicas would silently disagree on.
        int answer = 0;
        if (err && type != OpType::Flush) {
            if (!record_dirty(offset, length)) answer = EIO;
            drop_newer_link(origin);
        }
        if (err && type == OpType::Flush && !async) {
            // Answered from this replica alone: what the peer acked since
            // its last FLUSH may be lost there, and the client now counts
            // it durable. Marked now, with a generation (as above).
            bool recorded = true;
            for (const auto& r : sender->unflushed()) recorded = record_dirty(r.offset, r.length) && recorded;
            if (!recorded || !open_generation_for_flush()) answer = EIO;
            drop_newer_link(origin);  // a link that came up meanwhile must resync them
        }
        if (async) {
            lag_bytes_ -= cost;
            --lag_ops_;
            std::lock_guard lock(ship_mu_);
            ship_cv_.notify_all();  // wait_shipped
        }
        if (on_acked) on_acked(answer);
    };
    ship([s, op, cb = std::move(cb)]() mutable {
        std::uint16_t flags = op.fua ? peer::kFlagFua : 0;
        switch (op.type) {
            case OpType::Write:
                s->send(peer::Type::Write, flags, {}, std::move(cb), op.data, op.offset, op.length);
                break;
            case OpType::Flush:
                s->send(peer::Type::Flush, 0, {}, std::move(cb));
                break;
            case OpType::Trim:
                s->send(peer::Type::Trim, flags, peer::encode_range({op.offset, op.length}), std::move(cb));
                break;
            case OpType::Zero:
                s->send(peer::Type::Zero, flags | (op.may_punch ? peer::kFlagMayPunch : 0),
                        peer::encode_range({op.offset, op.length}), std::move(cb));
                break;
            case OpType::Read:
                break;
        }
    });
    // Async: complete once queued (and activity-logged); the shipper sends it.
    if (async) done(0);
    return {};
}

Status PeerLink::start_verify(bool repair) {
    {
        std::lock_guard lock(state_mu_);
        if (state_ != PeerState::InSync || !session_)
            return Error{EAGAIN, "the peer is " + std::string(to_string(state_)) + ": verify needs an in-sync peer"};
    }
    std::lock_guard lock(verify_mu_);
    if (verify_.state == "running") return Error{EBUSY, "a verify is already running"};
    if (verifier_.joinable()) verifier_.join();  // the last one, finished
    verify_ = VerifyStatus{};
    verify_.state = "running";
    verify_.repair = repair;
    verify_.total_bytes = volume_.size();
    try {
        verifier_ = std::thread([this, repair] {
            name_thread("peer-verify");
            run_verify(repair);
        });
    } catch (const std::exception& e) {  // at the task limit: this verify fails, nothing else
        verify_.state = "failed";
        verify_.detail = std::string("no thread to run it: ") + e.what();
        return Error{EAGAIN, verify_.detail};
    }
    return {};
}

VerifyStatus PeerLink::verify_status() const {
    std::lock_guard lock(verify_mu_);
    return verify_;
}

void PeerLink::run_verify(bool repair) {
    std::shared_ptr<Session> s;
    {
        std::lock_guard lock(state_mu_);
        if (state_ == PeerState::InSync) s = session_;
    }
    const std::uint64_t size = volume_.size();
    const std::uint64_t chunk = std::max<std::uint64_t>(4096, options_.verify_chunk);
    constexpr unsigned kWindow = 4;  // chunks checksummed at once
    std::mutex mu;
    std::condition_variable cv;
    unsigned outstanding = 0;
    int failed = s ? 0 : ENOTCONN;
    std::vector<VerifyRange> bad;
    for (std::uint64_t off = 0; off < size && s; off += chunk) {
        {
            std::unique_lock lock(mu);
            cv.wait(lock, [&] { return outstanding < kWindow || failed; });
            if (failed || s->dead() || stopping_) break;
            ++outstanding;
        }
        const std::uint64_t len = std::min(chunk, size - off);
        // Locked from the local read until the peer's digest is in: a write
        // to the chunk waits, and every earlier one is already applied on
        // both sides (sync) or queued before the VERIFY (async), so a write in
        // flight never shows as a mismatch.
        volume_.range_lock().acquire(off, len, [&, s, off, len](RangeLock::Ticket t) {
            pool_.post([&, s, off, len, t] {
                auto finish = [&, off, len, t](int err, bool match) {
                    volume_.range_lock().release(t);
                    std::lock_guard lock(mu);
                    --outstanding;
                    if (err) {
                        failed = err;
                    } else {
                        if (!match) bad.push_back({off, len});
                        std::lock_guard vlock(verify_mu_);
                        verify_.done_bytes += len;
                    }
                    cv.notify_all();
                };
                auto buf = std::make_shared<AlignedBuffer>(len);
                if (auto st = volume_.replica().read(off, buf->span()); !st) {
                    log(options_.volume, "verify read: " + st.error().message);
                    finish(EIO, true);
                    return;
                }
                const std::uint32_t mine = crc32c(buf->span());
                auto theirs = std::make_shared<std::uint32_t>(0);
                ship([s, off, len, mine, theirs, finish] {
                    s->send(
                        peer::Type::Verify, 0, peer::encode_range({off, len}),
                        [mine, theirs, finish](int err) { finish(err, *theirs == mine); }, nullptr, 0, 0,
                        [theirs](std::uint32_t crc) { *theirs = crc; });
                });
            });
        });
    }
    {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return outstanding == 0; });
    }
    // Neighbouring mismatched chunks are reported as one range.
    std::sort(bad.begin(), bad.end(), [](auto& a, auto& b) { return a.offset < b.offset; });
    std::vector<VerifyRange> merged;
    std::uint64_t mismatched = 0;
    for (auto r : bad) {
        mismatched += r.length;
        if (!merged.empty() && merged.back().offset + merged.back().length == r.offset)
            merged.back().length += r.length;
        else
            merged.push_back(r);
    }
    std::string detail;
    std::uint64_t compared;
    {
        std::lock_guard lock(verify_mu_);
        compared = verify_.done_bytes;
    }
    // A verify that did not compare every byte proves nothing about the rest:
    // the loop also ends early, without an error of its own, when the session
    // dies or the daemon stops between chunks.
    if (!failed && compared < size) failed = stopping_ ? ECANCELED : ECONNRESET;
    if (!failed && repair && !merged.empty()) {
        // Mark them dirty (a new generation, as for any write the peer
        // missed) and drop the link: the reconnect resyncs just these ranges.
        for (auto r : merged) record_dirty(r.offset, r.length);
        // The peer is alive: a FLUSH first spares the reconnect a resync of
        // every write it had not yet made durable (end_session()).
        (void)send_and_wait(s, static_cast<int>(peer::Type::Flush), {});
        s->kill();
        drop_newer_link(s);
        detail = "mismatched ranges marked for resync";
    }
    if (failed)
        detail = "stopped after comparing " + std::to_string(compared) + " of " + std::to_string(size) +
                 " bytes: " + std::strerror(failed);
    log(options_.volume, "verify " + std::string(failed ? "failed" : "done") + ": " + std::to_string(mismatched) +
                             " bytes mismatched in " + std::to_string(merged.size()) + " ranges" +
                             (failed ? "; " + detail : ""));
    std::lock_guard lock(verify_mu_);
    verify_.state = failed ? "failed" : "done";
    verify_.detail = detail;
    verify_.mismatched_bytes = mismatched;
    if (merged.size() > VerifyStatus::kMaxReported) merged.resize(VerifyStatus::kMaxReported);
    verify_.mismatches = std::move(merged);
}

Result<SyncDecision> PeerLink::handshake(int fd) {
    set_recv_timeout(fd, options_.ack_timeout_ms);
    if (!options_.psk.empty()) {
        if (auto st = authenticate_primary(fd, options_.psk, options_.volume); !st) return st.error();
    }
    auto meta = meta_.get();
    peer::Hello mine;
    mine.primary = true;
    mine.consistent = meta.consistent();
    mine.volume_id = meta.volume_id;
    mine.volume = options_.volume;
    mine.size = volume_.size();
    mine.granularity = meta.granularity;
    mine.gens = meta.gens;
    mine.node = options_.node;
    if (auto st = peer::send(fd, peer::Type::Hello, 0, 0, peer::encode_hello(mine)); !st) return st.error();
    auto m = peer::receive_small(fd, peer::kMaxHandshakeBody);
    if (!m) return m.error().context("reading the peer's HELLO");
    if (m->header.type == peer::Type::Refuse) return Error{EPERM, "refused: " + peer::decode_refuse(m->body)};
    if (m->header.type != peer::Type::Hello) return Error{EPROTO, "expected HELLO"};
    auto theirs = peer::decode_hello(m->body);
    if (!theirs) return theirs.error();
    std::string refusal;
    peer::VolumeId blank{};
    if (theirs->volume != options_.volume)
        refusal = "wrong volume " + theirs->volume;
    else if (theirs->primary)
        refusal = "the peer is primary too";
    else if (theirs->volume_id != blank && theirs->volume_id != meta.volume_id)
        refusal = "volume id differs: other data";
    else if (theirs->size != volume_.size())
        refusal = "size " + std::to_string(theirs->size) + " differs from ours";
    if (!refusal.empty()) {
        (void)peer::send(fd, peer::Type::Refuse, 0, 0, peer::encode_refuse(refusal));
        return Error{EPERM, refusal};
    }
    auto decision = decide(meta.gens, theirs->gens);
    if (decision == SyncDecision::None && !theirs->consistent) decision = SyncDecision::FullFromPrimary;
    if (!theirs->active.empty() &&
        (decision == SyncDecision::None || decision == SyncDecision::BitmapFromPrimary)) {
        // The peer was primary and died with writes in flight: they may be
        // on its replica and not here. This replica is the one kept, so its
        // data for those extents goes there. Marking them starts a new
        // generation here if none is open, so the decision becomes a bitmap
        // resync of them.
        log(options_.volume, "the peer's activity log holds " + std::to_string(theirs->active.size()) +
                                 " ranges from its time as primary: marking them for resync");
        for (const auto& r : theirs->active) {
            if (r.offset >= volume_.size()) continue;
            if (!record_dirty(r.offset, std::min(r.length, volume_.size() - r.offset)))
                return Error{EIO, volume_.failure()};
        }
        decision = decide(meta_.get().gens, theirs->gens);
    }
    // Same current generation but regions marked: the peer took our
    // generation (RESYNC_DONE applied) but its ack was lost, and writes it
    // then missed are in the bitmap without a new generation. They must be
    // sent, not cleared.
    if (decision == SyncDecision::None && meta_.dirty_bits() != 0) decision = SyncDecision::BitmapFromPrimary;
    if (decision == SyncDecision::BitmapFromPrimary || decision == SyncDecision::FullFromPrimary) {
        // The peer turns inconsistent once it takes this decision, until
        // RESYNC_DONE. Without a generation of our own (a resync of a link's
        // unflushed ranges), a link lost in between, even before its ACK
        // arrives, would leave both on one generation with the peer
        // inconsistent: a full sync next time instead of the bitmap. So one
        // is opened first, durably, and for a full sync after every region
        // is marked (a crash in between must not find fewer). One the peer
        // never took costs nothing if this node reconnects as primary (the
        // next decision is the same); if the peer is promoted instead, this
        // node comes back as peer-newer or split brain rather than with a
        // bitmap resync: the safe side, and only for a link lost within the
        // decision's round trip (docs/replicator.md, "Generations").
        if (decision == SyncDecision::FullFromPrimary && meta_.dirty_bits() != meta_.get().bits()) {
            meta_.set_all_dirty();  // once: a retried handshake finds it done
            if (auto st = meta_.persist_bitmap(); !st) {
                volume_.fail("cannot mark a full sync in " + meta_.path() + ": " + st.error().message);
                return Error{EIO, volume_.failure()};
            }
        }
        if (auto st = meta_.open_generation(false); !st) {
            volume_.fail("cannot start a generation in " + meta_.path() + ": " + st.error().message);
            return Error{EIO, volume_.failure()};
        }
    }
    if (auto st = peer::send(fd, peer::Type::Decision, 0, 0, peer::encode_decision(decision)); !st) return st.error();
    auto reply = peer::receive_small(fd, peer::kMaxHandshakeBody);
    if (!reply) return reply.error().context("reading the peer's answer to " + std::string(to_string(decision)));
    if (reply->header.type == peer::Type::Refuse) {
        if (decision == SyncDecision::SplitBrain || decision == SyncDecision::PeerNewer ||
            decision == SyncDecision::Unrelated)
            return decision;
        return Error{EPERM,
                     "peer refused " + std::string(to_string(decision)) + ": " + peer::decode_refuse(reply->body)};
    }
    if (reply->header.type != peer::Type::Ack) return Error{EPROTO, "expected ACK of the decision"};
    return decision;
}

Status PeerLink::resync(const std::shared_ptr<Session>& s) {
    const auto meta = meta_.get();
    const std::uint64_t g = meta.granularity;
    const std::uint64_t size = volume_.size();
    resync_total_ = meta_.dirty_bits();
    resync_done_ = 0;
    resync_bytes_ = 0;
    resync_ended_ns_ = 0;
    resync_started_ns_ = Clock::now().time_since_epoch().count();
    // However it ends: the rate in status is over the copy's own time.
    struct MarkEnd {
        std::atomic<std::int64_t>& ended;
        ~MarkEnd() { ended = Clock::now().time_since_epoch().count(); }
    } mark_end{resync_ended_ns_};
    std::mutex mu;
    std::condition_variable cv;
    unsigned outstanding = 0;
    bool failed = false;
    // Bounded: each pass copies what is dirty now; new dirty bits appear only
    // if the link fails, and then the pass ends early.
    for (int pass = 0; pass < 3 && !stopping_; ++pass) {
        std::uint64_t from = 0;
        while (auto bit = meta_.next_dirty(from)) {
            // A run of contiguous dirty regions travels as one copy of up to
            // kMaxRunBytes: fewer, larger writes on both disks.
            std::uint64_t first = *bit, count = 1;
            while (count * g < kMaxRunBytes && meta_.next_dirty(first + count) == first + count) ++count;
            from = first + count;
            {
                std::unique_lock lock(mu);
                cv.wait(lock, [&] { return outstanding < options_.resync_window || failed; });
                if (failed || s->dead() || stopping_) break;
                ++outstanding;
            }
            std::uint64_t off = first * g;
            std::uint64_t len = std::min(count * g, size - off);
            // The range is locked from read to ack: an application write to
            // it waits, so the copy can never land after (and undo) it.
            volume_.range_lock().acquire(off, len, [&, s, off, len, first, count](RangeLock::Ticket t) {
                pool_.post([&, s, off, len, first, count, t] {
                    auto buf = std::make_shared<AlignedBuffer>(len);
                    auto finish = [&, len, first, count, t](int err) {
                        if (!err) {
                            for (std::uint64_t b = first; b < first + count; ++b) meta_.clear_bit(b);
                            resync_done_ += count;
                            resync_bytes_ += len;
                        }
                        volume_.range_lock().release(t);
                        std::lock_guard lock(mu);
                        --outstanding;
                        if (err) failed = true;
                        cv.notify_all();
                    };
                    if (auto st = volume_.replica().read(off, buf->span()); !st) {
                        log(options_.volume, "resync read: " + st.error().message);
                        finish(EIO);
                        return;
                    }
                    const auto* p = buf->data();
                    bool zero = p[0] == 0 && std::memcmp(p, p + 1, len - 1) == 0;
                    if (zero) {
                        s->send(peer::Type::Zero, peer::kFlagResync | peer::kFlagMayPunch,
                                peer::encode_range({off, len}), finish);
                    } else {
                        s->send(
                            peer::Type::Write, peer::kFlagResync, {}, [finish, buf](int err) { finish(err); }, buf, off,
                            len);
                    }
                });
            });
        }
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return outstanding == 0; });
        if (failed || s->dead()) return Error{ECONNRESET, "resync interrupted: link down"};
        if (meta_.dirty_bits() == 0) break;
    }
    if (stopping_) return Error{ECANCELED, "resync stopped"};
    if (meta_.dirty_bits() != 0) return Error{EAGAIN, "resync did not converge"};
    // The peer acknowledged each copy once applied, not once durable: a
    // FLUSH first, or a bitmap cleared on disk here could outlive copies
    // its disk cache lost in a power cut of both nodes.
    if (int err = send_and_wait(s, static_cast<int>(peer::Type::Flush), {}); err != 0)
        return errno_error(err, "flushing the resynced regions on the peer");
    if (auto st = meta_.persist_bitmap(); !st) return st;

    // The peer takes the generations we have once the bitmap retires. Ours
    // are retired (durably) before it is told: were RESYNC_DONE applied and
    // its ack lost, or this node to crash before retiring, we would keep
    // the old bitmap generation while the peer held our current one. The
    // writes we took next, with the peer away, would start no generation
    // (one is being tracked already), so after a failover the two would
    // look equal (or the peer merely newer) with our writes on us alone.
    // This way round a lost RESYNC_DONE leaves the peer on the old
    // generation, now in our history: a full sync, rare and safe.
    auto now = meta_.get();
    peer::ResyncDone done{now.volume_id, now.gens};
    if (done.gens.bitmap != 0) {
        done.gens.history[1] = done.gens.history[0];
        done.gens.history[0] = done.gens.bitmap;
        done.gens.bitmap = 0;
    }
    if (auto st = meta_.finish_resync(); !st) return st.error().context("finishing resync");
    int result = send_and_wait(s, static_cast<int>(peer::Type::ResyncDone), peer::encode_resync_done(done));
    if (result != 0) return errno_error(result, "finishing resync");
    return {};
}

void PeerLink::manage() {
    bool drain_logged = false;  // logged once per wait, not every round
    auto last_away_retire = Clock::now();
    while (!stopping_) {
        {
            // An old session's failed ops record their ranges as they fail;
            // destroying it waits for its receiver, so all are recorded
            // before the next handshake reads the bitmap.
            std::shared_ptr<Session> old;
            {
                std::lock_guard lock(state_mu_);
                old.swap(session_);
            }
        }
        if (options_.async) {
            // Ops still queued for a dead session fail as they are sent and
            // record their ranges; wait for all of them, so the handshake
            // reads a complete bitmap. Each send fails at once, so this is
            // quick; if not, no handshake (a resync could finish while the
            // peer still differs): back off and wait again, each round
            // bounded and ended by stop().
            bool drained;
            {
                std::unique_lock lock(ship_mu_);
                drained = ship_cv_.wait_for(lock, std::chrono::milliseconds(options_.ack_timeout_ms * 2),
                                            [this] { return (ship_queue_.empty() && lag_ops_ == 0) || stopping_; });
            }
            if (stopping_) break;
            if (!drained) {
                if (!drain_logged)
                    log(options_.volume, "async ops of the old link still in flight: waiting before reconnecting");
                drain_logged = true;
                pause(options_.reconnect_ms);
                continue;
            }
            drain_logged = false;
        }
        if (volume_.failed()) {
            // Its metadata cannot record what a resync needs: no link until
            // a restart (the volume answers writes EIO meanwhile).
            set_state(PeerState::OutOfSync, "volume failed: " + volume_.failure());
            pause(options_.refused_retry_ms);
            continue;
        }
        auto fd = tcp_connect(options_.address, 2000);
        // Never shorter than the ack timeout an admin chose for a slow peer.
        if (fd) bound_unacked_time(fd->get(), std::max<unsigned>(kPeerUserTimeoutMs, options_.ack_timeout_ms));
        if (!fd) {
            {
                std::lock_guard lock(state_mu_);
                if (state_ == PeerState::InSync || state_ == PeerState::Resyncing) state_ = PeerState::OutOfSync;
                detail_ = fd.error().message;  // why it is still connecting, for the status
            }
            if (Clock::now() - last_away_retire >= std::chrono::milliseconds(options_.retire_interval_ms)) {
                retire_while_away();
                last_away_retire = Clock::now();
            }
            pause(options_.reconnect_ms);
            continue;
        }
        auto decision = handshake(fd->get());
        if (!decision) {
            // EPERM is a refusal on principle (wrong volume, size, id); the
            // rest are a link that failed mid-handshake: try again soon.
            bool refusal = decision.error().code == EPERM;
            set_state(refusal ? PeerState::Refused : PeerState::OutOfSync, decision.error().message);
            pause(refusal ? options_.refused_retry_ms : options_.reconnect_ms);
            continue;
        }
        PeerState refused = PeerState::Connecting;
        switch (*decision) {
            case SyncDecision::SplitBrain:
                refused = PeerState::SplitBrain;
                break;
            case SyncDecision::PeerNewer:
                refused = PeerState::PeerNewer;
                break;
            case SyncDecision::Unrelated:
                refused = PeerState::Unrelated;
                break;
            default:
                break;
        }
        if (refused != PeerState::Connecting) {
            set_state(refused, "neither replica is overwritten: an admin must choose (docs/replicator.md)");
            pause(options_.refused_retry_ms);
            continue;
        }
        set_recv_timeout(fd->get(), 0);
        std::shared_ptr<Session> session;
        try {
            session = std::make_shared<Session>(std::move(*fd), options_.ack_timeout_ms, options_.volume);
        } catch (const std::exception& e) {
            // No thread for its receiver (the task limit): this link only;
            // the volume serves on degraded and the next attempt may get one.
            set_state(PeerState::OutOfSync, std::string("no thread for the link: ") + e.what());
            pause(options_.reconnect_ms);
            continue;
        }
        const auto how = *decision;
        if (how == SyncDecision::None) {
            // Writes during the handshake found the link not up yet: they are
            // in the bitmap (marked under state_mu_), not on the peer. With
            // none marked, the link is in sync from here on. Otherwise this
            // link goes and the next handshake decides a bitmap resync: the
            // peer, which took "nothing to do", still counts itself
            // consistent, and must not while it lacks those writes.
            bool missed;
            {
                std::lock_guard lock(state_mu_);
                missed = meta_.dirty_bits() != 0;
                if (!missed) {
                    session_ = session;
                    state_ = PeerState::InSync;
                    detail_.clear();
                }
            }
            if (missed) {
                log(options_.volume, "writes arrived during the handshake: reconnecting to resync them");
                continue;  // `session` ends here, closing the link
            }
        }
        if (how == SyncDecision::None) {
            if (meta_.get().gens.bitmap != 0) {
                // The peer took our generation before we retired the bitmap
                // (no bit was set when the link came up).
                if (auto st = meta_.finish_resync(); !st) log(options_.volume, st.error().message);
            }
            log(options_.volume, "in-sync");
        } else {
            {
                std::lock_guard lock(state_mu_);
                session_ = session;
                state_ = PeerState::Resyncing;
                detail_ = std::string(to_string(how));
            }
            log(options_.volume, std::string("resyncing (") + std::string(to_string(how)) + ", " +
                                     std::to_string(meta_.dirty_bits()) + " regions)");
            auto st = resync(session);
            if (!st) {
                end_session(session);
                set_state(PeerState::OutOfSync, st.error().message);
                continue;
            }
            set_state(PeerState::InSync);
        }
        // Bounded by the link's life; now and then, try to retire the
        // activity log once the volume is idle.
        while (!stopping_ && !session->dead()) {
            session->wait_dead_for(stopping_, std::chrono::milliseconds(options_.retire_interval_ms));
            if (!stopping_ && !session->dead()) retire_activity(session);
        }
        end_session(session);
        if (!stopping_) set_state(PeerState::OutOfSync, "link down");
    }
}

void PeerLink::end_session(const std::shared_ptr<Session>& s) {
    s->kill();
    s->wait_dead();
    // What the peer acknowledged but was never asked to make durable: if it
    // lost power it may have lost those writes (its disk's volatile cache),
    // and nothing else would tell. Marked before the state says out-of-sync,
    // so the next resync sends them again. A peer that only lost the link
    // gets a few regions more than it needs. No new generation: the peer
    // took these writes, and this node may write nothing more before it is
    // demoted; a generation started here made a clean failover to the peer
    // look like a split brain. (Were the peer promoted, these bits go in
    // this node's HELLO as its secondary, and the new primary resyncs them.)
    auto ranges = s->unflushed();
    for (const auto& r : ranges) record_dirty(r.offset, r.length, false);
    if (!ranges.empty())
        log(options_.volume, "link ended with " + std::to_string(ranges.size()) +
                                 " unflushed ranges on the peer: marked for resync");
}

}  // namespace sanagent::replicator
