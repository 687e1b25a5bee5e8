#include "sanagent/replicator/control.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <exception>

#include "sanagent/replicator/net.h"
#include "sanagent/replicator/thread_name.h"

namespace sanagent::replicator {

ControlServer::~ControlServer() {
    stop();
}

Status ControlServer::start() {
    auto fd = unix_listen(path_);
    if (!fd) return fd.error().context("control socket");
    fd_ = std::move(*fd);
    thread_ = std::thread([this] {
        name_thread("ctl");
        loop();
    });
    return {};
}

void ControlServer::stop() {
    stopping_ = true;
    if (thread_.joinable()) {
        thread_.join();
        ::unlink(path_.c_str());
    }
}

void ControlServer::loop() {
    while (!stopping_) {
        pollfd pfd{fd_.get(), POLLIN, 0};
        if (::poll(&pfd, 1, 200) <= 0) continue;
        UniqueFd c = accept_client(fd_.get(), "control");
        if (!c.valid()) continue;
        // One short request per connection, bounded in size and in time as
        // a whole (a client trickling a byte now and then would otherwise
        // hold the loop): 2 s to read it, 2 s to take the reply.
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
        timeval two_s{2, 0};
        ::setsockopt(c.get(), SOL_SOCKET, SO_SNDTIMEO, &two_s, sizeof two_s);
        // The socket is 0600 already; the caller's credentials are checked
        // too, in case its directory or mode were changed behind our back.
        ucred who{};
        socklen_t who_len = sizeof who;
        if (::getsockopt(c.get(), SOL_SOCKET, SO_PEERCRED, &who, &who_len) != 0 ||
            (who.uid != 0 && who.uid != ::geteuid()))
            continue;
        std::string req;
        char buf[512];
        while (req.size() < kMaxRequest && req.find('\n') == std::string::npos) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            pollfd in{c.get(), POLLIN, 0};
            if (left.count() <= 0 || ::poll(&in, 1, static_cast<int>(left.count())) <= 0) break;
            ssize_t n = ::recv(c.get(), buf, sizeof buf, MSG_DONTWAIT);
            if (n <= 0) break;
            req.append(buf, static_cast<std::size_t>(n));
        }
        if (auto nl = req.find('\n'); nl != std::string::npos) req.resize(nl);
        std::string reply;
        try {
            reply = handler_(req) + "\n";
        } catch (const std::exception& e) {
            // A request must never take the daemon and its other volumes down.
            reply = std::string("{\"error\":\"internal error\"}\n");
            std::fprintf(stderr, "sanrepd: control request failed: %s\n", e.what());
        }
        (void)write_full(c.get(), {reinterpret_cast<const std::uint8_t*>(reply.data()), reply.size()});
    }
}

Result<std::string> control_request(const std::string& path, const std::string& request, int timeout_ms) {
    // One deadline for the whole exchange: a per-recv timeout would let a
    // server that trickles a byte now and then keep us waiting for ever.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    auto fd = unix_connect(path);
    if (!fd) return fd.error().context("sanrepd control socket " + path);
    set_recv_timeout(fd->get(), timeout_ms);
    std::string line = request + "\n";
    if (auto st = write_full(fd->get(), {reinterpret_cast<const std::uint8_t*>(line.data()), line.size()}); !st)
        return st.error().context("sanrepd control socket " + path);
    std::string reply;
    char buf[4096];
    // A reply is one line; the bound keeps a confused peer from feeding us forever.
    while (reply.size() < (16u << 20) && reply.find('\n') == std::string::npos) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            return Error{ETIMEDOUT,
                         "sanrepd at " + path + ": no complete reply within " + std::to_string(timeout_ms) + " ms"};
        pollfd pfd{fd->get(), POLLIN, 0};
        int ready = ::poll(&pfd, 1, static_cast<int>(left.count()));
        if (ready < 0 && errno == EINTR) continue;
        if (ready < 0) return Error{errno, "waiting for the reply of sanrepd at " + path};
        if (ready == 0) continue;  // the deadline check above ends it
        ssize_t n = ::recv(fd->get(), buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
        if (n < 0) return Error{errno, "reading the reply of sanrepd at " + path};
        if (n == 0) break;
        reply.append(buf, static_cast<std::size_t>(n));
    }
    if (auto nl = reply.find('\n'); nl != std::string::npos) reply.resize(nl);
    if (reply.empty()) return Error{EPROTO, "no reply from sanrepd at " + path};
    return reply;
}

}  // namespace sanagent::replicator
