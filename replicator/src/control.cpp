#include "sanagent/replicator/control.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sanagent/replicator/net.h"

namespace sanagent::replicator {

ControlServer::~ControlServer() {
    stop();
}

Status ControlServer::start() {
    auto fd = unix_listen(path_);
    if (!fd) return fd.error().context("control socket");
    fd_ = std::move(*fd);
    thread_ = std::thread([this] { loop(); });
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
        UniqueFd c(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!c.valid()) continue;
        // One short request per connection, bounded in size and time so a
        // stuck client cannot hold the loop.
        set_recv_timeout(c.get(), 2000);
        std::string req;
        char buf[512];
        while (req.size() < kMaxRequest && req.find('\n') == std::string::npos) {
            ssize_t n = ::recv(c.get(), buf, sizeof buf, 0);
            if (n <= 0) break;
            req.append(buf, static_cast<std::size_t>(n));
        }
        if (auto nl = req.find('\n'); nl != std::string::npos) req.resize(nl);
        std::string reply = handler_(req) + "\n";
        (void)write_full(c.get(), {reinterpret_cast<const std::uint8_t*>(reply.data()), reply.size()});
    }
}

}  // namespace sanagent::replicator
