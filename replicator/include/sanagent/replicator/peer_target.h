// The secondary's side of one volume: takes a primary's connection from a
// PeerListener (which may serve several volumes on one port), checks its HELLO
// against our metadata, agrees (or not) with its sync decision, then applies
// writes, zeroes and trims on the worker pool and acks each once applied;
// FLUSH is acked once every earlier op is applied and the replica is
// fdatasync-ed. While a resync is running this replica is marked inconsistent
// on disk, and only RESYNC_DONE makes it consistent again.
// Ops start in arrival order per range (a range lock): an async primary may
// have overlapping writes in flight, and they must land in the order sent.
// VERIFY takes the same lock, so its checksum sees every write sent before it.
//
// At most one session per volume is past HELLO (deciding or serving). A new,
// authenticated primary with the same node name as the current session's
// replaces it (the old TCP connection may be half-open after a network drop):
// the old session is shut down and its in-flight ops drained before the new
// one's HELLO is built from the metadata. Another node is refused while one
// is connected.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "sanagent/replicator/metadata.h"
#include "sanagent/replicator/peer_protocol.h"
#include "sanagent/replicator/range_lock.h"
#include "sanagent/replicator/replica.h"
#include "sanagent/replicator/worker_pool.h"

namespace sanagent::replicator {

// From accept to the agreed decision, authentication included: the primary
// needs a few round trips, a client that trickles bytes is cut off.
inline constexpr auto kPeerHandshakeBound = std::chrono::seconds(10);

struct PeerTargetStatus {
    std::string state;  // waiting, in-sync, resync-target, split-brain, peer-newer, unrelated, refused
    std::string detail;
    std::string primary;    // the connected primary's address, if any
    std::string peer_node;  // the node name in the last primary's HELLO (for resolve --keep)
};

// Logs at most one line per interval, counting the ones it swallowed: for
// events anyone who can reach a port can cause.
class RateLimitedLog {
public:
    RateLimitedLog(std::string prefix, std::chrono::seconds interval)
        : prefix_(std::move(prefix)), interval_(interval) {}
    void operator()(const std::string& line);

private:
    std::string prefix_;
    std::chrono::seconds interval_;
    std::mutex mu_;
    std::chrono::steady_clock::time_point last_{};
    unsigned unlogged_ = 0;
};

// A connection the listener matched to this volume by its first message.
struct PeerOpening {
    std::optional<peer::AuthChallenge> auth;  // the first message was AUTH (a key is in use)
    std::optional<peer::Hello> hello;         // or HELLO (no key)
    std::function<bool()> expired;            // cut off: the handshake's deadline passed, or a newcomer took its slot
    std::function<void()> proven;             // the primary proved the key (or, with none, named this volume)
    std::function<void()> handshake_done;     // called once the handshake succeeded: the session now serves
};

class PeerTarget {
public:
    // An empty `psk`: primaries are not authenticated.
    PeerTarget(std::string volume, Replica& replica, MetadataFile& meta, WorkerPool& pool,
               std::vector<std::uint8_t> psk = {});
    ~PeerTarget();
    // This node's name, sent in HELLO; call before start().
    void set_node(std::string node) { node_ = std::move(node); }
    // The primary's name a target of this volume had seen before this one
    // was made (a refused promotion puts a fresh target back): what
    // `resolve --keep` accepts until a primary says HELLO again.
    void remember_peer_node(const std::string& node) {
        std::lock_guard lock(mu_);
        status_.peer_node = node;
    }
    const std::string& volume() const { return volume_; }
    // Runs one connection from its first message (already read) to its end,
    // on the caller's thread: the handshake, then the session if agreed.
    void serve(int fd, const PeerOpening& opening);
    // Ends the session and refuses new ones; the caller joins the threads
    // that are inside serve().
    void stop();
    PeerTargetStatus status() const;
    // Whether a primary's session is past HELLO: a promotion is refused
    // while one is connected. connected_primary() names it.
    bool has_primary() const;
    std::string connected_primary() const;
    // How many sessions got past HELLO so far: a promotion compares it
    // before and after fencing the target off, to see one that slipped in.
    std::uint64_t sessions_started() const;

private:
    // Makes `fd` this volume's one session for primary `node`, replacing a
    // session of the same node (shut down, drained) and refusing another
    // node's. False with `why` when refused.
    bool claim(int fd, const std::string& node, std::string& why);
    // Ends `fd`'s claim; with a state, sets it in the same step.
    void release(int fd, const std::string& state = {});
    bool agree(int fd, const peer::Hello& theirs, std::string& why);
    void set_state(const std::string& state, const std::string& detail = {});
    void send_ack(int fd, std::uint64_t seq, int err);
    // A write, zero, trim or flush failed here: this replica no longer holds
    // what the primary sent, so it is marked inconsistent on disk (never
    // promoted) before the error is acked, and this session's RESYNC_DONE
    // is refused. The primary records the op dirty and drops the link; its
    // next resync makes the replica whole again.
    void local_failure(int err);
    // A connection dropped before it proved itself (or said HELLO): logged,
    // at most once per kRefusalLogMs with a count of the rest, and never a
    // visible state: anyone who can connect could otherwise flip it.
    void log_refusal(const std::string& why) { refusals_(why); }

    std::string volume_;
    std::string node_;
    RateLimitedLog refusals_;
    std::vector<std::uint8_t> psk_;
    Replica& replica_;
    MetadataFile& meta_;
    WorkerPool& pool_;
    std::atomic<bool> stopping_{false};

    mutable std::mutex mu_;
    PeerTargetStatus status_{"waiting", {}, {}, {}};
    // The session past HELLO, if any: its socket (shut down to end it) and
    // its primary's node name. released_ is signalled when it ends.
    int active_fd_ = -1;
    std::string active_node_;
    std::uint64_t sessions_started_ = 0;
    std::condition_variable released_;

    std::atomic<bool> session_failed_{false};  // a local op of this session failed
    std::mutex send_mu_;
    std::mutex inflight_mu_;
    std::condition_variable inflight_cv_;
    unsigned inflight_ = 0;
    std::uint64_t inflight_bytes_ = 0;  // of writes received and not yet applied
    RangeLock order_;
};

}  // namespace sanagent::replicator
