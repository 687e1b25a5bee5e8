// Sockets for the NBD front end, the peer link and the control socket: numeric
// addresses only (no resolver in a storage daemon's data path), and whole-
// buffer reads and writes that retry EINTR and short transfers.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "sanagent/fd.h"
#include "sanagent/result.h"

namespace sanagent::replicator {

// "HOST:PORT" with a numeric host; IPv6 as "[::1]:PORT".
Result<UniqueFd> tcp_listen(const std::string& address);
// Whether `address` is such a HOST:PORT, without opening anything.
Status check_address(const std::string& address);
Result<UniqueFd> tcp_connect(const std::string& address, int timeout_ms);
// A peer link's socket (or the listener its sessions are accepted from):
// data left unacknowledged for `ms` (and, with keepalive, an idle
// connection whose probes go unanswered that long) ends the connection, so
// a side whose peer's host vanished notices within seconds, not the
// kernel's 15 minutes of retransmissions or two hours of keepalive.
inline constexpr unsigned kPeerUserTimeoutMs = 20'000;
void bound_unacked_time(int fd, unsigned ms = kPeerUserTimeoutMs);
// Binds a stream socket at `path` (replacing a stale one) with mode 0600.
Result<UniqueFd> unix_listen(const std::string& path);
Result<UniqueFd> unix_connect(const std::string& path);
// accept4 for a listener a poll loop watches. Out of descriptors or memory
// (EMFILE, ENFILE, ENOBUFS, ENOMEM) the client stays queued and the
// listener stays readable: the loop would spin on it at full speed. So it
// logs (at most every 10 s, naming `what`) and sleeps 100 ms first.
UniqueFd accept_client(int listen_fd, const char* what, sockaddr_storage* from = nullptr);

// Reads exactly out.size() bytes; ECONNRESET on a clean EOF mid-way or at start.
Status read_full(int fd, std::span<std::uint8_t> out);
Status write_full(int fd, std::span<const std::uint8_t> data);
Status writev_full(int fd, struct iovec* iov, int count);
void set_recv_timeout(int fd, int ms);
void set_send_timeout(int fd, int ms);

// Whole-buffer reads through a receive buffer: one recv takes whatever the
// socket holds (several small requests at queue depth 32), and reads of
// 64 KiB or more skip the buffer. For a blocking socket read by one thread
// at a time (the caller serialises).
class BufferedReceiver {
public:
    // As recv(2): bytes read, 0 at the end of the stream, -1 with errno.
    using Source = std::function<ssize_t(std::uint8_t*, std::size_t)>;

    explicit BufferedReceiver(int fd, std::size_t capacity = 64 * 1024);
    // Reads from `source` instead of the socket (a TLS session on it).
    void read_from(Source source) { source_ = std::move(source); }
    Status read_full(std::span<std::uint8_t> out);
    std::size_t buffered() const { return end_ - begin_; }

private:
    ssize_t recv_some(std::uint8_t* buf, std::size_t len);
    int fd_;
    Source source_;
    std::vector<std::uint8_t> buf_;
    std::size_t begin_ = 0, end_ = 0;
};

}  // namespace sanagent::replicator
