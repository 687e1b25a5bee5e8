#include "sanagent/replicator/io_ring.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <system_error>

#include "sanagent/replicator/thread_name.h"

namespace sanagent::replicator {

namespace {
// user_data of the NOP that tells the completion thread to end; every other
// entry carries a heap-allocated Callback.
constexpr std::uint64_t kStop = 0;
}  // namespace

Result<std::unique_ptr<IoRing>> IoRing::create(unsigned entries, std::function<void()> after_batch) {
    auto r = std::unique_ptr<IoRing>(new IoRing);
    if (int err = io_uring_queue_init(entries, &r->ring_, 0); err < 0) return errno_error(-err, "io_uring_queue_init");
    r->ready_ = true;
    r->after_batch_ = std::move(after_batch);  // before the thread that reads it starts
    try {
        r->completer_ = std::thread([p = r.get()] {
            name_thread("io-ring");
            p->complete_loop();
        });
    } catch (const std::system_error& e) {
        // At the task limit: the caller falls back to blocking I/O.
        io_uring_queue_exit(&r->ring_);
        r->ready_ = false;
        return errno_error(e.code().value(), "starting the io_uring completion thread");
    }
    return r;
}

IoRing::~IoRing() {
    if (!ready_) return;
    {
        std::lock_guard lock(submit_mu_);
        // After every operation queued so far: the thread ends only once all
        // of them completed (it counts them).
        auto* sqe = next_sqe_locked();
        io_uring_prep_nop(sqe);
        // Completions come in any order: the drain flag starts the NOP only
        // after every earlier operation completed.
        io_uring_sqe_set_flags(sqe, IOSQE_IO_DRAIN);
        io_uring_sqe_set_data64(sqe, kStop);
        // The thread is joined next: it ends only once the NOP is in.
        submit_locked(true);
    }
    completer_.join();
    io_uring_queue_exit(&ring_);
}

io_uring_sqe* IoRing::next_sqe_locked() {
    // Bounded: a full submission queue is emptied into the kernel once; the
    // ring has more entries than a connection keeps requests in flight.
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (!sqe) {
        submit_locked(false);
        sqe = io_uring_get_sqe(&ring_);
    }
    if (!sqe) {
        std::fprintf(stderr, "sanrepd: io_uring submission queue full after a submit\n");
        std::abort();
    }
    return sqe;
}

void IoRing::read(int fd, void* buffer, std::size_t length, std::uint64_t offset, Callback done) {
    auto* cb = new Callback(std::move(done));
    std::lock_guard lock(submit_mu_);
    auto* sqe = next_sqe_locked();
    io_uring_prep_read(sqe, fd, buffer, static_cast<unsigned>(length), offset);
    io_uring_sqe_set_data(sqe, cb);
}

void IoRing::write(int fd, const void* buffer, std::size_t length, std::uint64_t offset, bool dsync, Callback done) {
    auto* cb = new Callback(std::move(done));
    std::lock_guard lock(submit_mu_);
    auto* sqe = next_sqe_locked();
    io_uring_prep_write(sqe, fd, buffer, static_cast<unsigned>(length), offset);
    if (dsync) sqe->rw_flags = RWF_DSYNC;  // FUA: durable before it completes
    io_uring_sqe_set_data(sqe, cb);
}

void IoRing::submit() {
    std::lock_guard lock(submit_mu_);
    submit_locked(false);
}

bool IoRing::queued() {
    std::lock_guard lock(submit_mu_);
    return io_uring_sq_ready(&ring_) > 0;
}

void IoRing::submit_locked(bool patient) {
    // What the kernel has not taken yet is counted from the ring itself: a
    // submit may take fewer entries than queued (no memory for a request
    // right now: EAGAIN, or a short count), and those stay in the ring for
    // the next call (liburing hands the kernel everything past its head).
    // Counting "submitted" by what was queued instead left such entries
    // behind for good: a request never answered, a connection never idle.
    // Bounded: what is still left waits for the next submit() (callers that
    // wait for completions submit again on their way).
    for (int i = 0; i < (patient ? 1000 : 16) && io_uring_sq_ready(&ring_) > 0; ++i) {
        int n = io_uring_submit(&ring_);
        if (n < 0 && n != -EINTR && n != -EAGAIN && n != -EBUSY) {
            std::fprintf(stderr, "sanrepd: io_uring_submit: %s\n", std::strerror(-n));
            break;
        }
        // EBUSY: completions to reap first, which the completion thread does.
        if (patient && n <= 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

void IoRing::complete_loop() {
    for (;;) {
        io_uring_cqe* cqe = nullptr;
        int err = io_uring_wait_cqe(&ring_, &cqe);
        if (err == -EINTR) continue;
        if (err < 0) {
            std::fprintf(stderr, "sanrepd: io_uring_wait_cqe: %s\n", std::strerror(-err));
            std::abort();  // completions would be lost: requests never answered
        }
        // Every completion that is already there, then one wait again.
        unsigned head;
        unsigned seen = 0;
        bool stop = false;
        io_uring_for_each_cqe(&ring_, head, cqe) {
            ++seen;
            std::uint64_t data = io_uring_cqe_get_data64(cqe);
            if (data == kStop) {
                stop = true;
                continue;
            }
            auto* cb = reinterpret_cast<Callback*>(data);
            int res = cqe->res;
            (*cb)(res);
            delete cb;
        }
        io_uring_cq_advance(&ring_, seen);
        if (after_batch_) after_batch_();
        if (stop) return;
    }
}

}  // namespace sanagent::replicator
