// The primary's side of one peer: the replication stage of the write path and
// the connection manager that (re)connects, handshakes, decides the sync
// direction from generations, resyncs dirty regions, and tracks the peer's
// state under the names an admin sees (docs/replicator.md, "States").
//
// Write path: while the peer is `in-sync` or `resyncing`, each write, trim,
// zero and flush is sent and the op completes when the peer acks; when it is
// anything else, the range is recorded in the persistent dirty bitmap first.
// A send that fails or an ack that does not come within the timeout drops the
// link: the affected ranges are recorded dirty and the ops complete.
//
// Async mode (a remote site): an op completes once it is queued for the peer;
// one shipper thread sends the queue in order, so the peer applies writes in
// the order they completed here. The bytes queued or unacked are the lag;
// an op that would take it past max_lag drops the link instead, and from then
// on writes are tracked in the bitmap and resynced on reconnect.
//
// Online verify: each chunk is range-locked here, checksummed locally, and a
// VERIFY for it travels behind every earlier op to the peer, which checksums
// its copy once those are applied; mismatched chunks are reported (and, with
// repair, marked dirty and resynced).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sanagent/replicator/metadata.h"
#include "sanagent/replicator/volume.h"

namespace sanagent::replicator {

enum class PeerState { Connecting, InSync, Resyncing, OutOfSync, SplitBrain, PeerNewer, Unrelated, Refused };
std::string_view to_string(PeerState s);

struct PeerLinkOptions {
    std::string address;                   // the secondary's HOST:PORT
    std::string volume;                    // checked against the peer's HELLO
    std::string node;                      // this node's name, sent in HELLO
    int ack_timeout_ms = 5000;             // an op unacked this long drops the link
    int reconnect_ms = 500;                // pause between connection attempts
    int refused_retry_ms = 5000;           // pause after a refused handshake (split brain, ...)
    unsigned resync_window = 16;           // copies (of up to 1 MiB) in flight during resync
    int retire_interval_ms = 1000;         // how often an idle volume's activity log is cleared
    std::vector<std::uint8_t> psk;         // empty: peers are not authenticated
    bool async = false;                    // acknowledge after the local write; ship with bounded lag
    std::uint64_t max_lag = 64ull << 20;   // async: bytes queued or unacked before falling back to the bitmap
    std::uint64_t verify_chunk = 1 << 20;  // online verify: bytes per checksum
};

struct VerifyRange {
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
};

struct VerifyStatus {
    std::string state = "never";  // never, running, done, failed
    std::string detail;           // why it failed
    bool repair = false;
    std::uint64_t total_bytes = 0;
    std::uint64_t done_bytes = 0;
    std::uint64_t mismatched_bytes = 0;
    std::vector<VerifyRange> mismatches;  // merged, in offset order; at most kMaxReported
    static constexpr std::size_t kMaxReported = 1000;
};

struct PeerStatus {
    PeerState state = PeerState::Connecting;
    std::string detail;              // why, for the last refusal or drop
    std::uint64_t resync_total = 0;  // regions to copy in the current/last resync
    std::uint64_t resync_done = 0;
    std::uint64_t resync_bytes = 0;  // bytes the current/last resync has copied
    std::uint64_t resync_ms = 0;     // how long the current/last resync has run (0: none yet)
    std::uint64_t lag_bytes = 0;     // async: written here, not yet acked by the peer
    std::uint64_t lag_ops = 0;
};

class PeerLink final : public Replication {
public:
    PeerLink(PeerLinkOptions options, Volume& volume, MetadataFile& meta, WorkerPool& pool);
    ~PeerLink() override;
    void start();
    void stop();

    Status replicate(const Op& op, std::function<void(int error)> done) override;
    PeerStatus status() const;

    // Starts an online verify in the background (EBUSY if one runs, EAGAIN if
    // the peer is not in-sync); progress and result are in verify_status().
    Status start_verify(bool repair);
    VerifyStatus verify_status() const;

    class Session;

private:
    void manage();
    Result<SyncDecision> handshake(int fd);
    Status resync(const std::shared_ptr<Session>& session);
    // Sends one message and waits for its ack; the errno, 0 on success.
    int send_and_wait(const std::shared_ptr<Session>& session, int type, std::vector<std::uint8_t> body);
    void retire_activity(const std::shared_ptr<Session>& session);
    // A write that failed on `origin` is in the bitmap: if a later link is
    // up, it is dropped, so that the write is resynced.
    void drop_newer_link(const std::weak_ptr<Session>& origin);
    // Async: adds an op's bytes to the lag unless that passes max_lag.
    bool reserve_lag(std::uint64_t cost);
    // Kills the session, waits for it, and marks what the peer may have lost.
    void end_session(const std::shared_ptr<Session>& session);
    void set_state(PeerState s, const std::string& detail = {});
    // False if the range could not be recorded: the volume is then failed.
    // `new_generation`: as MetadataFile::record_missed.
    bool record_dirty(std::uint64_t offset, std::uint64_t length, bool new_generation = true);
    // Waits until record_missed()'s change is on disk; if it cannot be, fails
    // the volume (Volume::fail) and returns false.
    bool wait_recorded(const Result<std::uint64_t>& change);
    // Before a FLUSH is answered without the peer's: a new generation if
    // regions are marked and none is open. False (volume failed) if it
    // cannot be written.
    bool open_generation_for_flush();
    void retire_while_away();
    void pause(int ms);
    // Sync mode: runs `send` now. Async: queues it behind every earlier op for the shipper thread.
    void ship(std::function<void()> send);
    void ship_loop();
    void run_verify(bool repair);

    PeerLinkOptions options_;
    Volume& volume_;
    MetadataFile& meta_;
    WorkerPool& pool_;
    std::thread manager_;
    std::atomic<bool> stopping_{false};
    std::mutex pause_mu_;
    std::condition_variable pause_cv_;

    mutable std::mutex state_mu_;
    PeerState state_ = PeerState::Connecting;
    std::string detail_;
    std::shared_ptr<Session> session_;
    std::atomic<std::uint64_t> resync_total_{0}, resync_done_{0}, resync_bytes_{0};
    // steady_clock nanoseconds: when the current/last resync started and ended (0: still running).
    std::atomic<std::int64_t> resync_started_ns_{0}, resync_ended_ns_{0};

    std::mutex ship_mu_;
    std::condition_variable ship_cv_;
    std::deque<std::function<void()>> ship_queue_;
    std::thread shipper_;
    // Under ship_mu_: the shipper takes queued ops. ship() reads this, not
    // shipper_.joinable(), which stop() changes by joining.
    bool shipping_ = false;
    std::atomic<std::uint64_t> lag_bytes_{0}, lag_ops_{0};

    mutable std::mutex verify_mu_;
    VerifyStatus verify_;
    std::thread verifier_;
};

}  // namespace sanagent::replicator
