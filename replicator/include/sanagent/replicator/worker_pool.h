// A fixed set of threads running posted jobs in FIFO order: the blocking
// pread/pwrite/fdatasync stage of the data path. Callers bound what they post
// (each NBD connection caps its requests in flight), so the queue is bounded
// by construction. Jobs must not throw; one that does terminates the daemon
// rather than being swallowed.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace sanagent::replicator {

class WorkerPool {
public:
    explicit WorkerPool(unsigned threads);
    ~WorkerPool();  // runs what is queued, then joins
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

    void post(std::function<void()> job);

private:
    void run();
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> jobs_;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

}  // namespace sanagent::replicator
