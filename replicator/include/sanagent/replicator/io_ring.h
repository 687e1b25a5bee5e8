// One io_uring (liburing) with its own completion thread: the replica's
// direct reads and writes for one NBD connection, submitted without a thread
// sleeping in each one. The blocking path (a thread per request in pread or
// pwritev2) costs a sleep and a wake-up of that thread per request, and on a
// virtual machine a device notification each; a ring lets the connection's
// reader queue requests as they arrive and the kernel submit them together.
//
// Callbacks run on the completion thread, one at a time, with the result as
// io_uring gives it (bytes done, or -errno). They must not wait on another
// operation of the same ring.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "sanagent/result.h"

namespace sanagent::replicator {

class IoRing {
public:
    using Callback = std::function<void(int result)>;

    // ENOSYS / EPERM where the kernel has no io_uring or it is switched off
    // (kernel.io_uring_disabled): callers then use the blocking path.
    // `after_batch`, if given, runs on the completion thread after each batch
    // of callbacks (the completions that were there at one wake-up): what
    // they gathered, sent once.
    static Result<std::unique_ptr<IoRing>> create(unsigned entries, std::function<void()> after_batch = nullptr);
    ~IoRing();  // waits for every submitted operation, then ends the thread
    IoRing(const IoRing&) = delete;
    IoRing& operator=(const IoRing&) = delete;

    // Queue a read or write; it reaches the kernel at the next submit().
    void read(int fd, void* buffer, std::size_t length, std::uint64_t offset, Callback done);
    void write(int fd, const void* buffer, std::size_t length, std::uint64_t offset, bool dsync, Callback done);
    // Hands every queued operation to the kernel in one system call.
    void submit();
    // Whether operations wait for a submit().
    bool queued();
    // Whether the caller is this ring's completion thread (a callback may
    // also run on the caller's thread, where the I/O took the blocking path).
    bool on_completion_thread() const { return std::this_thread::get_id() == completer_.get_id(); }

private:
    IoRing() = default;
    io_uring_sqe* next_sqe_locked();
    // Submits until the kernel has taken every queued entry or a retry
    // bound passes; `patient` waits a little between tries (the ring's end).
    void submit_locked(bool patient);
    void complete_loop();

    io_uring ring_{};
    bool ready_ = false;
    std::mutex submit_mu_;               // the submission queue has one writer at a time
    std::function<void()> after_batch_;  // set before the thread starts, then only read
    std::thread completer_;
};

}  // namespace sanagent::replicator
