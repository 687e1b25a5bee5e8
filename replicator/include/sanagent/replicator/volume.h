// A volume as the NBD front end sees it: the stage that orders writes (range
// lock), writes the local replica on the worker pool, hands each write to the
// replication stage (the peers), and completes a request only when both are
// done. Reads are served from the local replica alone.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "sanagent/replicator/latency.h"
#include "sanagent/replicator/range_lock.h"
#include "sanagent/replicator/replica.h"
#include "sanagent/replicator/worker_pool.h"

namespace sanagent::replicator {

enum class OpType { Read, Write, Flush, Trim, Zero };

struct Op {
    OpType type = OpType::Read;
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
    bool fua = false;
    bool may_punch = true;                // Zero: NBD_CMD_FLAG_NO_HOLE clears it
    std::shared_ptr<AlignedBuffer> data;  // Write payload, Read destination
    // Where the local read or write goes (its connection's ring); none: a
    // blocking call. The op completes on the ring's thread then.
    IoRing* ring = nullptr;
};

// Completion: errno (0 on success) and, for a read, the data.
using Completion = std::function<void(int error, std::shared_ptr<AlignedBuffer> data)>;

// The replication stage (the peers). Volume calls it with the op's range
// locked. It calls `done` when every in-sync peer has acknowledged the op, or
// once an unreachable peer's share is recorded in the dirty bitmap. For a peer
// that is already away it records the range *before returning*, so the intent
// is durable before the local write is issued. An error means the op could
// not be recorded (the metadata failed): `done` is then never called and the
// op must not be applied locally. `done` gets an errno when the peer's share
// was lost and could not be recorded either (the volume is then failed):
// the op must be answered with it, not as a success.
class Replication {
public:
    virtual ~Replication() = default;
    virtual Status replicate(const Op& op, std::function<void(int error)> done) = 0;
};

struct VolumeCounters {
    std::atomic<std::uint64_t> reads{0}, writes{0}, flushes{0}, trims{0}, zeroes{0};
    std::atomic<std::uint64_t> bytes_read{0}, bytes_written{0}, errors{0};
    // From ordering in the volume to completion: a write's includes the
    // peers' acknowledgement, a flush's their fdatasync.
    LatencyHistogram read_latency, write_latency, flush_latency;
};

class Volume {
public:
    Volume(Replica replica, WorkerPool& pool) : replica_(std::move(replica)), pool_(pool) {}
    void set_replication(Replication* replication) { replication_ = replication; }

    Replica& replica() { return replica_; }
    RangeLock& range_lock() { return lock_; }
    const VolumeCounters& counters() const { return counters_; }
    std::uint64_t size() const { return replica_.size(); }

    // Takes the volume out of service after its metadata failed (its disk
    // failing, a full file system): from now on every write, trim, zero and
    // flush is answered EIO, since its dirty record could not be kept; reads
    // are still served. Other volumes of the daemon go on. Until a restart.
    void fail(const std::string& why);
    bool failed() const { return failed_.load(); }
    std::string failure() const;

    // Orders the op now and returns the work for the caller to run on its own
    // thread once it has let go of whatever serialises submissions (the NBD
    // reader lock), saving a thread hop per request. Returns an empty
    // function when the op had to wait for an overlapping write; it then
    // runs on the pool when that one is done.
    std::function<void()> submit_inline(Op op, Completion done);

private:
    void run_locked(std::shared_ptr<Op> op, RangeLock::Ticket ticket, Completion done);
    Replica replica_;
    WorkerPool& pool_;
    Replication* replication_ = nullptr;
    RangeLock lock_;
    VolumeCounters counters_;
    std::atomic<bool> failed_{false};
    mutable std::mutex failure_mu_;
    std::string failure_;
};

}  // namespace sanagent::replicator
