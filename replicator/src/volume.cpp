#include "sanagent/replicator/volume.h"

#include <cstdio>

namespace sanagent::replicator {

namespace {

// Joins the local write and the replication stage: the last one to finish
// completes the request.
struct Join {
    std::atomic<int> pending;
    std::atomic<int> error{0};
    std::function<void()> finish;
    explicit Join(int n) : pending(n) {}
    void arrive() {
        if (pending.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
        // finish captures this Join; moving it out breaks the cycle.
        auto f = std::move(finish);
        finish = nullptr;
        f();
    }
};

int status_errno(const Status& st) {
    if (st.ok()) return 0;
    std::fprintf(stderr, "sanrepd: %s\n", st.error().message.c_str());
    return st.error().code ? st.error().code : EIO;
}

}  // namespace

void Volume::fail(const std::string& why) {
    {
        std::lock_guard lock(failure_mu_);
        if (failed_) return;
        failure_ = why;
        failed_ = true;
    }
    std::fprintf(stderr, "sanrepd: volume failed, answering writes and flushes EIO until a restart: %s\n", why.c_str());
}

std::string Volume::failure() const {
    std::lock_guard lock(failure_mu_);
    return failure_;
}

std::function<void()> Volume::submit_inline(Op op, Completion done) {
    auto shared = std::make_shared<Op>(std::move(op));
    LatencyHistogram* timed = shared->type == OpType::Read    ? &counters_.read_latency
                              : shared->type == OpType::Write ? &counters_.write_latency
                              : shared->type == OpType::Flush ? &counters_.flush_latency
                                                              : nullptr;
    if (timed) {
        done = [timed, start = std::chrono::steady_clock::now(), inner = std::move(done)](
                   int err, std::shared_ptr<AlignedBuffer> data) {
            timed->record(std::chrono::steady_clock::now() - start);
            inner(err, std::move(data));
        };
    }
    if (shared->type != OpType::Read && failed_) {
        return [this, done = std::move(done)] {
            counters_.errors++;
            done(EIO, nullptr);
        };
    }
    switch (shared->type) {
        case OpType::Read:
            // Reads are not ordered against writes: the NBD spec leaves a read
            // racing an overlapping write undefined, as a disk does.
            return [this, shared, done = std::move(done)] {
                replica_.read_async(shared->ring, shared->offset, shared->data->span(),
                                    [this, shared, done](Status st) {
                                        int err = status_errno(st);
                                        counters_.reads++;
                                        counters_.bytes_read += shared->length;
                                        if (err) counters_.errors++;
                                        done(err, shared->data);
                                    });
            };
        case OpType::Flush:
            // Not range-locked: a flush covers writes already completed, and those
            // have left the lock.
            return [this, done = std::move(done), shared] {
                auto join = std::make_shared<Join>(replication_ ? 2 : 1);
                join->finish = [this, join, done] {
                    counters_.flushes++;
                    done(join->error.load(), nullptr);
                };
                if (replication_) {
                    if (auto st = replication_->replicate(*shared,
                                                          [join](int err) {
                                                              if (err) join->error = err;
                                                              join->arrive();
                                                          });
                        !st) {
                        join->error = EIO;
                        join->arrive();
                    }
                }
                if (int err = status_errno(replica_.flush())) join->error = err;
                join->arrive();
            };
        case OpType::Write:
        case OpType::Trim:
        case OpType::Zero:
            break;
    }
    std::function<void(RangeLock::Ticket)> later = [this, shared, done](RangeLock::Ticket ticket) mutable {
        // On the pool, once the overlapping write is done, the blocking way:
        // were it queued on the connection's ring, another thread could
        // submit it, see the connection idle and end the ring before this
        // thread's own submit touched it. (Overlapping writes are rare.)
        shared->ring = nullptr;
        pool_.post(
            [this, shared, ticket, done = std::move(done)]() mutable { run_locked(shared, ticket, std::move(done)); });
    };
    auto ticket = lock_.take_or_queue(shared->offset, shared->length, later);
    if (!ticket) return {};
    return [this, shared, t = *ticket, done = std::move(done)]() mutable { run_locked(shared, t, std::move(done)); };
}

void Volume::run_locked(std::shared_ptr<Op> op, RangeLock::Ticket ticket, Completion done) {
    auto join = std::make_shared<Join>(replication_ ? 2 : 1);
    join->finish = [this, join, op, ticket, done = std::move(done)] {
        lock_.release(ticket);
        done(join->error.load(), nullptr);
    };
    // Replication first: for an absent peer it makes the dirty bit durable
    // before the local write below is issued. If it cannot, nothing is
    // written: a local write the bitmap does not know of would be a silent
    // difference between the replicas.
    if (replication_) {
        if (auto rst = replication_->replicate(*op,
                                               [join](int err) {
                                                   if (err) join->error = err;
                                                   join->arrive();
                                               });
            !rst) {
            counters_.errors++;
            join->error = EIO;
            join->arrive();
            join->arrive();
            return;
        }
    }
    if (op->type == OpType::Write) {
        counters_.writes++;
        counters_.bytes_written += op->length;
        replica_.write_async(op->ring, op->offset, op->data->span().first(op->length), op->fua,
                             [this, join](Status st) {
                                 if (int err = status_errno(st)) {
                                     counters_.errors++;
                                     join->error = err;
                                 }
                                 join->arrive();
                             });
        return;
    }
    Status st;
    switch (op->type) {
        case OpType::Trim:
            st = replica_.trim(op->offset, op->length);
            if (st && op->fua) st = replica_.flush();
            counters_.trims++;
            break;
        case OpType::Zero:
            st = replica_.zero(op->offset, op->length, op->may_punch, op->fua);
            counters_.zeroes++;
            break;
        default:
            break;
    }
    if (int err = status_errno(st)) {
        counters_.errors++;
        join->error = err;
    }
    join->arrive();
}

}  // namespace sanagent::replicator
