#include "sanagent/replicator/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

namespace sanagent::replicator {

namespace {

struct Parsed {
    sockaddr_storage addr{};
    socklen_t len = 0;
    int family = AF_INET;
};

Result<Parsed> parse(const std::string& address) {
    auto colon = address.rfind(':');
    if (colon == std::string::npos) return Error{EINVAL, "address " + address + ": expected HOST:PORT"};
    std::string host = address.substr(0, colon);
    std::string port_s = address.substr(colon + 1);
    char* end = nullptr;
    unsigned long port = std::strtoul(port_s.c_str(), &end, 10);
    if (port_s.empty() || *end || port > 65535) return Error{EINVAL, "address " + address + ": bad port"};
    Parsed p;
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
        auto* a6 = reinterpret_cast<sockaddr_in6*>(&p.addr);
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(static_cast<std::uint16_t>(port));
        if (inet_pton(AF_INET6, host.c_str(), &a6->sin6_addr) != 1)
            return Error{EINVAL, "address " + address + ": not a numeric IPv6 address"};
        p.len = sizeof(sockaddr_in6);
        p.family = AF_INET6;
    } else {
        auto* a4 = reinterpret_cast<sockaddr_in*>(&p.addr);
        a4->sin_family = AF_INET;
        a4->sin_port = htons(static_cast<std::uint16_t>(port));
        if (inet_pton(AF_INET, host.c_str(), &a4->sin_addr) != 1)
            return Error{EINVAL, "address " + address + ": not a numeric IPv4 address"};
        p.len = sizeof(sockaddr_in);
    }
    return p;
}

}  // namespace

Status check_address(const std::string& address) {
    if (auto p = parse(address); !p) return p.error();
    return {};
}

namespace {

void tune_tcp(int fd) {
    int one = 1;
    // Small replies (acks, NBD reply headers) must not wait for Nagle.
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // An idle connection whose other end died with its host (power, a
    // partition) would otherwise look alive for the kernel's default two
    // hours: a secondary would keep a dead primary's session and refuse to
    // be promoted. Probes after 5 s idle, every 2 s, 3 missed: about 11 s
    // (peer sockets: their TCP_USER_TIMEOUT decides instead, see
    // bound_unacked_time). Accepted sockets inherit these from the listener.
    ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    int idle_s = 5, interval_s = 2, probes = 3;
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof idle_s);
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval_s, sizeof interval_s);
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes);
}

}  // namespace

void bound_unacked_time(int fd, unsigned ms) {
    ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms);
}

Result<UniqueFd> tcp_listen(const std::string& address) {
    auto p = parse(address);
    if (!p) return p.error();
    UniqueFd fd(::socket(p->family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return last_errno("socket for " + address);
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    // Accepted connections inherit these: a secondary's acks must not wait
    // for Nagle either (measured: 4 KiB QD32 writes at a third of the rate).
    tune_tcp(fd.get());
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&p->addr), p->len) < 0) return last_errno("binding " + address);
    if (::listen(fd.get(), 16) < 0) return last_errno("listening on " + address);
    return fd;
}

Result<UniqueFd> tcp_connect(const std::string& address, int timeout_ms) {
    auto p = parse(address);
    if (!p) return p.error();
    UniqueFd fd(::socket(p->family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd.valid()) return last_errno("socket for " + address);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&p->addr), p->len) < 0) {
        if (errno != EINPROGRESS) return last_errno("connecting to " + address);
        pollfd pfd{fd.get(), POLLOUT, 0};
        int n = ::poll(&pfd, 1, timeout_ms);
        if (n == 0) return Error{ETIMEDOUT, "connecting to " + address + ": timed out"};
        if (n < 0) return last_errno("connecting to " + address);
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) return errno_error(err, "connecting to " + address);
    }
    int flags = ::fcntl(fd.get(), F_GETFL);
    ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
    tune_tcp(fd.get());
    return fd;
}

Result<UniqueFd> unix_listen(const std::string& path) {
    sockaddr_un addr{};
    if (path.size() >= sizeof addr.sun_path) return Error{ENAMETOOLONG, "UNIX socket path " + path};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return last_errno("socket for " + path);
    ::unlink(path.c_str());
    // Created 0600 from the start (umask), not chmod-ed after: no window in
    // which another user could connect.
    mode_t old = ::umask(0177);
    int rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    int saved = errno;
    ::umask(old);
    if (rc < 0) return errno_error(saved, "binding " + path);
    if (::listen(fd.get(), 16) < 0) return last_errno("listening on " + path);
    return fd;
}

UniqueFd accept_client(int listen_fd, const char* what, sockaddr_storage* from) {
    socklen_t len = sizeof(sockaddr_storage);
    UniqueFd fd(::accept4(listen_fd, reinterpret_cast<sockaddr*>(from), from ? &len : nullptr, SOCK_CLOEXEC));
    if (fd.valid()) return fd;
    const int err = errno;
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        static std::atomic<std::int64_t> last_log{0};
        const auto now =
            std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now().time_since_epoch())
                .count();
        if (auto last = last_log.load(); now - last >= 10 && last_log.compare_exchange_strong(last, now))
            std::fprintf(stderr, "sanrepd: cannot accept a %s connection: %s (backing off)\n", what,
                         std::strerror(err));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return fd;
}

Result<UniqueFd> unix_connect(const std::string& path) {
    sockaddr_un addr{};
    if (path.size() >= sizeof addr.sun_path) return Error{ENAMETOOLONG, "UNIX socket path " + path};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return last_errno("socket for " + path);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0)
        return last_errno("connecting to " + path);
    return fd;
}

Status read_full(int fd, std::span<std::uint8_t> out) {
    std::size_t done = 0;
    while (done < out.size()) {
        ssize_t n = ::recv(fd, out.data() + done, out.size() - done, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return last_errno("receiving");
        }
        if (n == 0)
            return Error{ECONNRESET,
                         done ? "receiving: connection closed mid-message" : "receiving: connection closed"};
        done += static_cast<std::size_t>(n);
    }
    return {};
}

Status write_full(int fd, std::span<const std::uint8_t> data) {
    struct iovec iov {
        const_cast<std::uint8_t*>(data.data()), data.size()
    };
    return writev_full(fd, &iov, 1);
}

Status writev_full(int fd, struct iovec* iov, int count) {
    // Bounded: each pass sends at least one byte or returns.
    while (count > 0) {
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = static_cast<std::size_t>(count);
        ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return last_errno("sending");
        }
        auto left = static_cast<std::size_t>(n);
        while (count > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            ++iov;
            --count;
        }
        if (count > 0) {
            iov->iov_base = static_cast<std::uint8_t*>(iov->iov_base) + left;
            iov->iov_len -= left;
        }
    }
    return {};
}

BufferedReceiver::BufferedReceiver(int fd, std::size_t capacity) : fd_(fd), buf_(capacity) {}

ssize_t BufferedReceiver::recv_some(std::uint8_t* buf, std::size_t len) {
    return source_ ? source_(buf, len) : ::recv(fd_, buf, len, 0);
}

Status BufferedReceiver::read_full(std::span<std::uint8_t> out) {
    std::size_t done = std::min(out.size(), buffered());
    std::memcpy(out.data(), buf_.data() + begin_, done);
    begin_ += done;
    if (done == out.size()) return {};
    begin_ = end_ = 0;  // empty now
    const std::size_t left = out.size() - done;
    // A large read goes straight into `out`; a small one fills the buffer
    // with whatever else has arrived. Bounded: each recv brings at least one
    // byte or ends the read.
    const bool direct = left >= buf_.size();
    std::size_t got = 0;
    while (got < left) {
        ssize_t n =
            direct ? recv_some(out.data() + done + got, left - got) : recv_some(buf_.data() + end_, buf_.size() - end_);
        if (n < 0) {
            if (errno == EINTR) continue;
            return last_errno("receiving");
        }
        if (n == 0)
            return Error{ECONNRESET,
                         done || got ? "receiving: connection closed mid-message" : "receiving: connection closed"};
        got += static_cast<std::size_t>(n);
        if (!direct) end_ += static_cast<std::size_t>(n);
    }
    if (!direct) {
        std::memcpy(out.data() + done, buf_.data(), left);
        begin_ = left;
    }
    return {};
}

void set_recv_timeout(int fd, int ms) {
    timeval tv{ms / 1000, (ms % 1000) * 1000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

void set_send_timeout(int fd, int ms) {
    timeval tv{ms / 1000, (ms % 1000) * 1000};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

}  // namespace sanagent::replicator
