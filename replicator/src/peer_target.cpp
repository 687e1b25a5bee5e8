#include "sanagent/replicator/peer_target.h"

#include <poll.h>
#include <sys/socket.h>

#include <cstdio>

#include "sanagent/replicator/crc32c.h"
#include "sanagent/replicator/net.h"
#include "sanagent/replicator/peer_auth.h"
#include "sanagent/replicator/peer_io.h"

namespace sanagent::replicator {

namespace {
void log(const std::string& s) {
    std::fprintf(stderr, "sanrepd: secondary: %s\n", s.c_str());
}
constexpr unsigned kMaxInFlight = 256;
// From accept to the agreed decision, authentication included: the primary
// needs a few round trips, a client that trickles bytes is cut off.
constexpr auto kHandshakeBound = std::chrono::seconds(10);
constexpr auto kRefusalLogInterval = std::chrono::seconds(10);
// HELLO and DECISION are a few hundred bytes; a REFUSE's text is short.
constexpr std::uint32_t kMaxHandshakeBody = 4096;

// Shuts the connection down unless disarmed within `bound`: one deadline for
// the whole handshake however the peer paces its bytes (a per-recv timeout
// restarts with every byte).
class HandshakeDeadline {
public:
    HandshakeDeadline(int fd, std::chrono::milliseconds bound)
        : thread_([this, fd, bound] {
              std::unique_lock lock(mu_);
              if (!cv_.wait_for(lock, bound, [this] { return disarmed_; })) {
                  expired_ = true;
                  ::shutdown(fd, SHUT_RDWR);
              }
          }) {}
    ~HandshakeDeadline() { disarm(); }
    HandshakeDeadline(const HandshakeDeadline&) = delete;
    HandshakeDeadline& operator=(const HandshakeDeadline&) = delete;
    void disarm() {
        {
            std::lock_guard lock(mu_);
            disarmed_ = true;
        }
        cv_.notify_all();
        if (thread_.joinable()) thread_.join();
    }
    bool expired() {
        std::lock_guard lock(mu_);
        return expired_;
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    bool disarmed_ = false;
    bool expired_ = false;
    std::thread thread_;  // last: starts once the rest is constructed
};
constexpr std::uint64_t kInlineMaxBytes = 64 * 1024;
}  // namespace

PeerTarget::PeerTarget(std::string volume, Replica& replica, MetadataFile& meta, WorkerPool& pool,
                       std::vector<std::uint8_t> psk)
    : volume_(std::move(volume)), psk_(std::move(psk)), replica_(replica), meta_(meta), pool_(pool) {}

PeerTarget::~PeerTarget() {
    stop();
}

Status PeerTarget::listen(const std::string& address) {
    auto fd = tcp_listen(address);
    if (!fd) return fd.error().context("peer listener");
    listen_fd_ = std::move(*fd);
    return {};
}

void PeerTarget::start() {
    thread_ = std::thread([this] { accept_loop(); });
}

void PeerTarget::stop() {
    stopping_ = true;
    {
        std::lock_guard lock(mu_);
        if (active_fd_ >= 0) ::shutdown(active_fd_, SHUT_RDWR);
    }
    if (thread_.joinable()) thread_.join();
}

PeerTargetStatus PeerTarget::status() const {
    std::lock_guard lock(mu_);
    return status_;
}

void PeerTarget::set_state(const std::string& state, const std::string& detail) {
    std::lock_guard lock(mu_);
    if (state != status_.state) log(status_.state + " -> " + state + (detail.empty() ? "" : ": " + detail));
    status_.state = state;
    status_.detail = detail;
}

void PeerTarget::accept_loop() {
    // One primary at a time, served on this thread; the poll tick bounds how
    // long stop() waits.
    while (!stopping_) {
        pollfd pfd{listen_fd_.get(), POLLIN, 0};
        if (::poll(&pfd, 1, 200) <= 0) continue;
        UniqueFd fd(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!fd.valid()) continue;
        {
            std::lock_guard lock(mu_);
            active_fd_ = fd.get();
        }
        serve(fd.get());
        {
            std::lock_guard lock(mu_);
            active_fd_ = -1;
        }
    }
}

void PeerTarget::log_refusal(const std::string& why) {
    auto now = std::chrono::steady_clock::now();
    if (last_refusal_log_ != std::chrono::steady_clock::time_point{} && now - last_refusal_log_ < kRefusalLogInterval) {
        ++refusals_unlogged_;
        return;
    }
    std::string more =
        refusals_unlogged_ ? " (and " + std::to_string(refusals_unlogged_) + " more since the last)" : "";
    log("dropping a connection: " + why + more);
    last_refusal_log_ = now;
    refusals_unlogged_ = 0;
}

void PeerTarget::send_ack(int fd, std::uint64_t seq, int err) {
    std::lock_guard lock(send_mu_);
    // A failed ack send means the link is gone; the primary finds out itself.
    (void)peer::send(fd, peer::Type::Ack, 0, seq, peer::encode_ack(err));
}

bool PeerTarget::agree(int fd, const peer::Hello& theirs, std::string& why) {
    auto meta = meta_.get();
    peer::VolumeId blank{};
    if (theirs.volume != volume_)
        why = "wrong volume " + theirs.volume;
    else if (!theirs.primary)
        why = "the peer is not primary";
    else if (meta.volume_id != blank && theirs.volume_id != meta.volume_id)
        why = "volume id differs: other data";
    else if (theirs.size != replica_.size())
        why = "size " + std::to_string(theirs.size) + " differs from ours";
    if (!why.empty()) return false;

    auto m = peer::receive_small(fd, kMaxHandshakeBody);
    if (!m) {
        why = m.error().message;
        return false;
    }
    if (m->header.type == peer::Type::Refuse) {
        why = "primary refused: " + *peer::decode_refuse(m->body);
        return false;
    }
    auto d = m->header.type == peer::Type::Decision ? peer::decode_decision(m->body)
                                                    : Result<SyncDecision>(Error{EPROTO, "expected DECISION"});
    if (!d) {
        why = d.error().message;
        return false;
    }
    // Decide for ourselves too: a primary that got it wrong must not be able
    // to overwrite newer data here.
    auto mine = decide(theirs.gens, meta.gens);
    if (mine == SyncDecision::None && !meta.consistent()) mine = SyncDecision::FullFromPrimary;
    bool acceptable = *d == mine || (*d == SyncDecision::FullFromPrimary && mine != SyncDecision::SplitBrain &&
                                     mine != SyncDecision::PeerNewer && mine != SyncDecision::Unrelated);
    if (mine == SyncDecision::SplitBrain || mine == SyncDecision::PeerNewer || mine == SyncDecision::Unrelated ||
        !acceptable) {
        why = std::string(to_string(mine));
        set_state(mine == SyncDecision::SplitBrain  ? "split-brain"
                  : mine == SyncDecision::PeerNewer ? "peer-newer"
                  : mine == SyncDecision::Unrelated ? "unrelated"
                                                    : "refused",
                  "primary proposed " + std::string(to_string(*d)) + "; this replica is kept as it is");
        (void)peer::send(fd, peer::Type::Refuse, 0, 0, peer::encode_refuse(why));
        return false;
    }
    if (*d == SyncDecision::BitmapFromPrimary || *d == SyncDecision::FullFromPrimary) {
        // Inconsistent on disk before the first resync byte lands: a crash
        // mid-resync must not leave a replica that looks whole.
        auto st = meta_.update([&](Metadata& next) {
            next.flags &= ~kMetaFlagConsistent;
            if (next.volume_id == blank) next.volume_id = theirs.volume_id;
        });
        if (!st) {
            why = st.error().message;
            (void)peer::send(fd, peer::Type::Refuse, 0, 0, peer::encode_refuse(why));
            return false;
        }
        set_state("resync-target", std::string(to_string(*d)));
    } else {
        set_state("in-sync");
    }
    send_ack(fd, m->header.seq, 0);
    return true;
}

void PeerTarget::serve(int fd) {
    set_recv_timeout(fd, 5000);
    HandshakeDeadline deadline(fd, kHandshakeBound);
    auto cut_off = [&](const std::string& why) {
        return deadline.expired() ? "no complete handshake within " + std::to_string(kHandshakeBound.count()) + " s"
                                  : why;
    };
    if (!psk_.empty()) {
        // Nothing about this volume is said before the primary proves it
        // holds the key.
        if (auto st = authenticate_secondary(fd, psk_, volume_); !st) {
            log_refusal("not authenticated: " + cut_off(st.error().message));
            return;
        }
    }
    auto first = peer::receive_small(fd, kMaxHandshakeBody);
    if (first && first->header.type == peer::Type::Auth) {
        (void)peer::send(fd, peer::Type::Refuse, 0, 0,
                         peer::encode_refuse("this node has no psk_file: authentication is not configured here"));
        log_refusal("a primary that authenticates: this node has no psk_file");
        return;
    }
    if (!first || first->header.type != peer::Type::Hello) {
        log_refusal("no HELLO: " + cut_off(first ? "another message first" : first.error().message));
        return;
    }
    auto theirs = peer::decode_hello(first->body);
    auto meta = meta_.get();
    peer::Hello mine;
    mine.primary = false;
    mine.consistent = meta.consistent();
    mine.volume_id = meta.volume_id;
    mine.volume = volume_;
    mine.size = replica_.size();
    mine.granularity = meta.granularity;
    mine.gens = meta.gens;
    mine.node = node_;
    if (!theirs) {
        log("refusing primary: " + theirs.error().message);
        (void)peer::send(fd, peer::Type::Refuse, 0, 0, peer::encode_refuse(theirs.error().message));
        return;
    }
    if (theirs->volume == volume_) {
        // Only a primary that holds the key (if one is configured) and
        // serves this volume: its name is what `resolve --keep` may name
        // besides our own.
        std::lock_guard lock(mu_);
        status_.peer_node = theirs->node;
    }
    if (auto st = peer::send(fd, peer::Type::Hello, 0, 0, peer::encode_hello(mine)); !st) return;
    std::string why;
    if (!agree(fd, *theirs, why)) {
        if (deadline.expired()) {
            log_refusal(cut_off(why));  // a stalled handshake is no verdict on the data
            return;
        }
        log("refusing primary: " + why);
        if (status().state == "waiting" || status().state == "in-sync") set_state("refused", why);
        return;
    }
    deadline.disarm();
    set_recv_timeout(fd, 0);
    std::string ended;
    peer::Reader reader(fd);
    while (!stopping_) {
        auto m = reader.receive();
        if (!m) {
            ended = m.error().message;
            break;
        }
        const auto& h = m->header;
        // Returns true when nothing else is in flight and the op is small:
        // it then runs on this thread, saving a hand-off on the latency-bound
        // QD1 path; otherwise it goes to the pool so ops overlap and this
        // thread keeps reading.
        auto start = [&](std::uint64_t bytes = 0) {
            std::unique_lock lock(inflight_mu_);
            inflight_cv_.wait(lock, [this] { return inflight_ < kMaxInFlight; });
            return inflight_++ == 0 && bytes <= kInlineMaxBytes;
        };
        auto run = [this](bool here, std::function<void()> job) {
            if (here)
                job();
            else
                pool_.post(std::move(job));
        };
        // As run, for an op on a range: once no earlier op on an overlapping
        // range is still running (the job gets its ticket to release).
        auto run_ordered = [this, &run](bool here, std::uint64_t off, std::uint64_t len,
                                        std::function<void(RangeLock::Ticket)> job) {
            std::function<void(RangeLock::Ticket)> later = [this, job](RangeLock::Ticket t) {
                pool_.post([job, t] { job(t); });
            };
            if (auto t = order_.take_or_queue(off, len, later)) run(here, [job, t = *t] { job(t); });
        };
        auto finish = [this, fd, seq = h.seq](int err) {
            send_ack(fd, seq, err);
            std::lock_guard lock(inflight_mu_);
            --inflight_;
            inflight_cv_.notify_all();
        };
        auto drain = [&] {
            std::unique_lock lock(inflight_mu_);
            inflight_cv_.wait(lock, [this] { return inflight_ == 0; });
        };
        auto to_errno = [](const Status& st) { return st.ok() ? 0 : (st.error().code ? st.error().code : EIO); };
        if (h.type == peer::Type::Write) {
            auto data = m->write_data;
            std::uint64_t off = m->write_offset;
            if (off > replica_.size() || data->size() > replica_.size() - off) {
                send_ack(fd, h.seq, EINVAL);
                continue;
            }
            run_ordered(start(data->size()), off, data->size(),
                        [this, data, off, fua = bool(h.flags & peer::kFlagFua), finish, to_errno](RangeLock::Ticket t) {
                            int err = to_errno(replica_.write(off, data->span(), fua));
                            order_.release(t);
                            finish(err);
                        });
        } else if (h.type == peer::Type::Zero || h.type == peer::Type::Trim) {
            auto r = peer::decode_range(m->body);
            if (!r) {
                ended = r.error().message;
                break;
            }
            if (r->offset > replica_.size() || r->length > replica_.size() - r->offset) {
                send_ack(fd, h.seq, EINVAL);
                continue;
            }
            run_ordered(start(), r->offset, r->length,
                        [this, r = *r, type = h.type, flags = h.flags, finish, to_errno](RangeLock::Ticket t) {
                            Status st = type == peer::Type::Trim
                                            ? replica_.trim(r.offset, r.length)
                                            : replica_.zero(r.offset, r.length, flags & peer::kFlagMayPunch,
                                                            flags & peer::kFlagFua);
                            if (st && type == peer::Type::Trim && (flags & peer::kFlagFua)) st = replica_.flush();
                            order_.release(t);
                            finish(to_errno(st));
                        });
        } else if (h.type == peer::Type::Verify) {
            auto r = peer::decode_range(m->body);
            if (!r) {
                ended = r.error().message;
                break;
            }
            if (r->offset > replica_.size() || r->length > replica_.size() - r->offset || r->length > peer::kMaxBody) {
                ended = "VERIFY range out of bounds";
                break;
            }
            run_ordered(start(), r->offset, r->length, [this, fd, seq = h.seq, r = *r](RangeLock::Ticket t) {
                auto buf = std::make_shared<AlignedBuffer>(r.length);
                auto st = replica_.read(r.offset, buf->span());
                order_.release(t);
                peer::Digest d{st ? 0 : (st.error().code ? st.error().code : EIO), st ? crc32c(buf->span()) : 0u};
                {
                    std::lock_guard lock(send_mu_);
                    (void)peer::send(fd, peer::Type::Digest, 0, seq, peer::encode_digest(d));
                }
                std::lock_guard lock(inflight_mu_);
                --inflight_;
                inflight_cv_.notify_all();
            });
        } else if (h.type == peer::Type::Flush) {
            // Every op received before the flush is applied first: acks the
            // primary has seen are then covered by the fdatasync.
            drain();
            run(start(), [this, finish, to_errno] { finish(to_errno(replica_.flush())); });
        } else if (h.type == peer::Type::ResyncDone) {
            auto d = peer::decode_resync_done(m->body);
            if (!d) {
                ended = d.error().message;
                break;
            }
            drain();
            Status st = replica_.flush();
            if (st) {
                st = meta_.update([&](Metadata& next) {
                    next.volume_id = d->volume_id;
                    next.gens = d->gens;
                    next.flags |= kMetaFlagConsistent;
                });
            }
            if (st) set_state("in-sync");
            send_ack(fd, h.seq, to_errno(st));
        } else {
            ended = "unexpected message type " + std::to_string(static_cast<int>(h.type));
            break;
        }
    }
    ::shutdown(fd, SHUT_RDWR);
    std::unique_lock lock(inflight_mu_);
    inflight_cv_.wait(lock, [this] { return inflight_ == 0; });
    lock.unlock();
    log("primary gone: " + ended);
    set_state("waiting");
}

}  // namespace sanagent::replicator
