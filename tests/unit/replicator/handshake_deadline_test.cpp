// The one deadline for a whole handshake (NBD clients: 30 s, peers: 10 s),
// with short bounds: a blocked read ends once it passes, however the other
// side paces its bytes, and a disarmed deadline leaves the socket alone.
#include "sanagent/replicator/handshake_deadline.h"

#include <sys/socket.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <atomic>
#include <chrono>
#include <thread>

#include "sanagent/fd.h"

using sanagent::replicator::HandshakeDeadline;
using namespace std::chrono_literals;

namespace {

struct SocketPair {
    sanagent::UniqueFd ours, theirs;
    SocketPair() {
        int fds[2];
        BOOST_TEST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
        ours = sanagent::UniqueFd(fds[0]);
        theirs = sanagent::UniqueFd(fds[1]);
    }
};

// Reads until the socket ends or fails; the number of bytes read.
std::size_t read_until_end(int fd) {
    std::size_t total = 0;
    char c;
    for (;;) {
        ssize_t n = ::recv(fd, &c, 1, 0);
        if (n <= 0) return total;
        total += static_cast<std::size_t>(n);
    }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(handshake_deadline)

BOOST_AUTO_TEST_CASE(a_silent_peer_is_cut_off) {
    SocketPair s;
    HandshakeDeadline deadline(s.ours.get(), 100ms);
    BOOST_TEST(read_until_end(s.ours.get()) == 0u);
    BOOST_TEST(deadline.expired());
}

// A per-read timeout would restart with every byte; the deadline does not.
BOOST_AUTO_TEST_CASE(a_peer_sending_a_byte_now_and_then_is_cut_off_too) {
    SocketPair s;
    std::atomic<bool> done{false};
    std::thread trickle([&] {
        // Bounded: 20 s of bytes at most, far past the deadline.
        for (int i = 0; i < 1000 && !done; ++i) {
            if (::send(s.theirs.get(), "x", 1, MSG_NOSIGNAL) != 1) break;
            std::this_thread::sleep_for(20ms);
        }
    });
    {
        HandshakeDeadline deadline(s.ours.get(), 300ms);
        BOOST_TEST(read_until_end(s.ours.get()) > 0u);
        BOOST_TEST(deadline.expired());
    }
    done = true;
    trickle.join();
}

BOOST_AUTO_TEST_CASE(a_disarmed_deadline_leaves_the_socket_alone) {
    SocketPair s;
    {
        // Ends at once on destruction, not after the bound.
        HandshakeDeadline deadline(s.ours.get(), 3600s);
        deadline.disarm();
        BOOST_TEST(!deadline.expired());
    }
    BOOST_TEST_REQUIRE(::send(s.theirs.get(), "ok", 2, MSG_NOSIGNAL) == 2);
    char buf[2];
    BOOST_TEST(::recv(s.ours.get(), buf, 2, MSG_WAITALL) == 2);
    BOOST_TEST(::send(s.ours.get(), "ok", 2, MSG_NOSIGNAL) == 2);
}

BOOST_AUTO_TEST_SUITE_END()
