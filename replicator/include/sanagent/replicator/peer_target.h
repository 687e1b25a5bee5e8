// The secondary's side: accepts the primary's connection, checks its HELLO
// against our metadata, agrees (or not) with its sync decision, then applies
// writes, zeroes and trims on the worker pool and acks each once applied;
// FLUSH is acked once every earlier op is applied and the replica is
// fdatasync-ed. While a resync is running this replica is marked inconsistent
// on disk, and only RESYNC_DONE makes it consistent again.
// Ops start in arrival order per range (a range lock): an async primary may
// have overlapping writes in flight, and they must land in the order sent.
// VERIFY takes the same lock, so its checksum sees every write sent before it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sanagent/fd.h"
#include "sanagent/replicator/metadata.h"
#include "sanagent/replicator/range_lock.h"
#include "sanagent/replicator/replica.h"
#include "sanagent/replicator/worker_pool.h"

namespace sanagent::replicator {

struct PeerTargetStatus {
    std::string state;  // waiting, in-sync, resync-target, split-brain, peer-newer, unrelated, refused
    std::string detail;
    std::string primary;    // the connected primary's address, if any
    std::string peer_node;  // the node name in the last primary's HELLO (for resolve --keep)
};

class PeerTarget {
public:
    // An empty `psk`: primaries are not authenticated.
    PeerTarget(std::string volume, Replica& replica, MetadataFile& meta, WorkerPool& pool,
               std::vector<std::uint8_t> psk = {});
    ~PeerTarget();
    // This node's name, sent in HELLO; call before start().
    void set_node(std::string node) { node_ = std::move(node); }
    Status listen(const std::string& address);
    void start();
    void stop();
    PeerTargetStatus status() const;

private:
    void accept_loop();
    void serve(int fd);
    bool agree(int fd, const peer::Hello& theirs, std::string& why);
    void set_state(const std::string& state, const std::string& detail = {});
    void send_ack(int fd, std::uint64_t seq, int err);
    // A connection dropped before it proved itself (or said HELLO): logged,
    // at most once per kRefusalLogMs with a count of the rest, and never a
    // visible state: anyone who can connect could otherwise flip it.
    void log_refusal(const std::string& why);

    std::string volume_;
    std::string node_;
    std::chrono::steady_clock::time_point last_refusal_log_{};  // accept thread only
    unsigned refusals_unlogged_ = 0;
    std::vector<std::uint8_t> psk_;
    Replica& replica_;
    MetadataFile& meta_;
    WorkerPool& pool_;
    UniqueFd listen_fd_;
    std::thread thread_;
    std::atomic<bool> stopping_{false};

    mutable std::mutex mu_;
    PeerTargetStatus status_{"waiting", {}, {}, {}};
    int active_fd_ = -1;

    std::mutex send_mu_;
    std::mutex inflight_mu_;
    std::condition_variable inflight_cv_;
    unsigned inflight_ = 0;
    RangeLock order_;
};

}  // namespace sanagent::replicator
