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
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "sanagent/replicator/metadata.h"
#include "sanagent/replicator/volume.h"

namespace sanagent::replicator {

enum class PeerState { Connecting, InSync, Resyncing, OutOfSync, SplitBrain, PeerNewer, Unrelated, Refused };
std::string_view to_string(PeerState s);

struct PeerLinkOptions {
    std::string address;            // the secondary's HOST:PORT
    std::string volume;             // checked against the peer's HELLO
    int ack_timeout_ms = 5000;      // an op unacked this long drops the link
    int reconnect_ms = 500;         // pause between connection attempts
    int refused_retry_ms = 5000;    // pause after a refused handshake (split brain, ...)
    unsigned resync_window = 16;    // copies (of up to 1 MiB) in flight during resync
    int retire_interval_ms = 1000;  // how often an idle volume's activity log is cleared
};

struct PeerStatus {
    PeerState state = PeerState::Connecting;
    std::string detail;              // why, for the last refusal or drop
    std::uint64_t resync_total = 0;  // regions to copy in the current/last resync
    std::uint64_t resync_done = 0;
    std::uint64_t resync_bytes = 0;  // bytes the current/last resync has copied
};

class PeerLink final : public Replication {
public:
    PeerLink(PeerLinkOptions options, Volume& volume, MetadataFile& meta, WorkerPool& pool);
    ~PeerLink() override;
    void start();
    void stop();

    void replicate(const Op& op, std::function<void()> done) override;
    PeerStatus status() const;

    class Session;

private:
    void manage();
    Result<SyncDecision> handshake(int fd);
    Status resync(const std::shared_ptr<Session>& session);
    // Sends one message and waits for its ack; the errno, 0 on success.
    int send_and_wait(const std::shared_ptr<Session>& session, int type, std::vector<std::uint8_t> body);
    void retire_activity(const std::shared_ptr<Session>& session);
    void set_state(PeerState s, const std::string& detail = {});
    void record_dirty(std::uint64_t offset, std::uint64_t length);
    void pause(int ms);

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
};

}  // namespace sanagent::replicator
