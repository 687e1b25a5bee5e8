// One listening TCP address of the secondary side, shared by every volume
// configured with it: accepts primaries' connections, reads each one's first
// message (AUTH names the volume since protocol 4; without a key, HELLO
// does), and hands the connection to that volume's PeerTarget.
//
// Handshakes run concurrently, each on its own thread and each bounded by
// kPeerHandshakeBound from accept, at most kMaxHandshakes at once; past that
// a new connection is closed at once (logged, rate-limited). So clients that
// connect and stall cannot delay a real primary beyond the slots they hold,
// and a stalled one never holds a slot longer than the bound. Once a
// handshake has succeeded the connection's thread serves the session and no
// longer counts against the limit.
#pragma once

#include <atomic>
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

    explicit PeerListener(std::string address);
    ~PeerListener();
    PeerListener(const PeerListener&) = delete;
    PeerListener& operator=(const PeerListener&) = delete;

    const std::string& address() const { return address_; }
    // Before start(); the target outlives the listener's stop().
    void add(PeerTarget& target);
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
        bool done = false;
    };
    void accept_loop();
    void run(Connection& c);
    void handshake_over(Connection& c);
    void reap();

    std::string address_;
    std::map<std::string, PeerTarget*> targets_;
    UniqueFd listen_fd_;
    std::thread accept_thread_;
    std::atomic<bool> stopping_{false};
    RateLimitedLog drops_;

    std::mutex mu_;
    std::list<Connection> connections_;  // stable addresses: each thread holds its own
    unsigned handshaking_ = 0;
};

}  // namespace sanagent::replicator
