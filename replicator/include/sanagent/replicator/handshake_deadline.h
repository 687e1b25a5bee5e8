// One deadline for a whole handshake, however the other side paces its
// bytes: a per-recv timeout restarts with every byte, so a client sending one
// now and then could hold a connection slot for days.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <exception>
#include <thread>

namespace sanagent::replicator {

// Shuts the socket down (the blocked read fails) unless disarmed within
// `bound`. Disarmed by the destructor at the latest. Where no thread can be
// started for it (the process is at its task limit), the socket is shut
// down at once: that connection fails, the daemon goes on.
class HandshakeDeadline {
public:
    HandshakeDeadline(int fd, std::chrono::milliseconds bound) {
        try {
            thread_ = std::thread([this, fd, bound] {
                std::unique_lock lock(mu_);
                if (!cv_.wait_for(lock, bound, [this] { return disarmed_; })) {
                    expired_ = true;
                    ::shutdown(fd, SHUT_RDWR);
                }
            });
        } catch (const std::exception&) {  // system_error, or bad_alloc for the thread's state
            expired_ = true;
            ::shutdown(fd, SHUT_RDWR);
        }
    }
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
    std::thread thread_;
};

}  // namespace sanagent::replicator
