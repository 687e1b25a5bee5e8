// The control socket's client: its timeout bounds the whole exchange, so a
// server that trickles bytes without ever ending the line cannot hold it.
#include "sanagent/replicator/control.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "sanagent/replicator/net.h"

using namespace sanagent;
using namespace sanagent::replicator;

BOOST_AUTO_TEST_CASE(control_request_gives_up_on_a_trickling_server) {
    char tmpl[] = "/tmp/sanrep-control-XXXXXX";
    std::filesystem::path dir = ::mkdtemp(tmpl);
    const std::string path = dir / "t.ctl";
    auto listener = unix_listen(path);
    BOOST_TEST_REQUIRE(listener.ok());
    // Accepts one client, then sends a byte every 50 ms and never a newline;
    // bounded: 200 bytes at most, and it stops once the client has gone.
    std::thread trickler([fd = listener->get()] {
        pollfd pfd{fd, POLLIN, 0};
        if (::poll(&pfd, 1, 10'000) <= 0) return;  // the client never came
        UniqueFd c(::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC));
        if (!c.valid()) return;
        for (int i = 0; i < 200; ++i) {
            if (::send(c.get(), "x", 1, MSG_NOSIGNAL) != 1) return;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    });
    auto reply = control_request(path, "{\"command\":\"status\"}", 300);
    BOOST_TEST(!reply.ok());
    if (!reply.ok()) BOOST_TEST(reply.error().code == ETIMEDOUT, reply.error().message);
    trickler.join();
    std::filesystem::remove_all(dir);
}
