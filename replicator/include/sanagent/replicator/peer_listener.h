// One listening TCP address of the secondary side, shared by every volume
// configured with it: accepts primaries' connections, reads each one's first
// message (AUTH names the volume since protocol 4; without a key, HELLO
// does), and hands the connection to that volume's PeerTarget.
//
// Handshakes run concurrently, each on its own thread and each bounded by
// kPeerHandshakeBound from accept, at most kMaxHandshakes at once; past that
// a new connection cuts off the oldest handshake (logged, rate-limited), and
// one source (an IPv4 address, an IPv6 /64) holds at most
// kMaxHandshakesPerSource of them, a new one past that closed at once. So
// clients that connect and stall cannot delay a real primary beyond the
// slots they hold, cannot keep it out by holding them all (its handshake,
// a few round trips, is never the oldest for long), and a stalled one never
// holds a slot longer than the bound. Once a
// handshake has succeeded the connection's thread serves the session and no
// longer counts against the limit.
#pragma once

#include <atomic>
#include <condition_variable>
#include <list>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "sanagent/fd.h"
#include "sanagent/replicator/peer_target.h"
#include "sanagent/result.h"

namespace sanagent::replicator {

class PeerListener {
public:
    static constexpr unsigned kMaxHandshakes = 8;
    static constexpr unsigned kMaxHandshakesPerSource = kMaxHandshakes / 2;

    explicit PeerListener(std::string address);
    ~PeerListener();
    PeerListener(const PeerListener&) = delete;
    PeerListener& operator=(const PeerListener&) = delete;

    const std::string& address() const { return address_; }
    // Before or after start(); the target outlives the listener's stop()
    // or its remove().
    void add(PeerTarget& target);
    // A volume leaves (a reload dropped it): no new connection is handed to
    // it, its connections are shut down and stopped, and this returns once
    // none uses the target. Bounded: a handshake ends within
    // kPeerHandshakeBound, a session once its socket fails.
    void remove(const std::string& volume);
    std::size_t volumes() const;
    Status listen();
    void start();
    // Closes the listener, shuts every connection down and joins their
    // threads (bounded: a session ends once its socket fails).
    void stop();

private:
    struct Connection {
        UniqueFd fd;
        std::thread thread;
        bool handshaking = true;
        bool evicted = false;  // cut off for a newcomer while every slot was taken
        bool proven = false;   // the primary proved the key (or named the volume): never cut off
        bool done = false;
        std::string source;  // the peer's address bytes: handshakes per source are limited
        std::string volume;  // the target it was handed to, once it was
    };
    void accept_loop();
    void run(Connection& c);
    void handshake_over(Connection& c);
    void proven(Connection& c);
    bool evicted(const Connection& c) const;
    void reap();

    std::string address_;
    UniqueFd listen_fd_;
    std::thread accept_thread_;
    std::atomic<bool> stopping_{false};
    RateLimitedLog drops_;

    mutable std::mutex mu_;
    std::condition_variable released_;             // a connection is done
    std::map<std::string, PeerTarget*> targets_;  // under mu_
    std::list<Connection> connections_;  // stable addresses: each thread holds its own
    unsigned handshaking_ = 0;
    unsigned evicted_ = 0;  // of those, cut off and still ending
};

}  // namespace sanagent::replicator
