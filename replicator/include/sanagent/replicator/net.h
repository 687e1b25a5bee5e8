// Sockets for the NBD front end, the peer link and the control socket: numeric
// addresses only (no resolver in a storage daemon's data path), and whole-
// buffer reads and writes that retry EINTR and short transfers.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <span>
#include <string>

#include "sanagent/fd.h"
#include "sanagent/result.h"

namespace sanagent::replicator {

// "HOST:PORT" with a numeric host; IPv6 as "[::1]:PORT".
Result<UniqueFd> tcp_listen(const std::string& address);
Result<UniqueFd> tcp_connect(const std::string& address, int timeout_ms);
// Binds a stream socket at `path` (replacing a stale one) with mode 0600.
Result<UniqueFd> unix_listen(const std::string& path);
Result<UniqueFd> unix_connect(const std::string& path);

// Reads exactly out.size() bytes; ECONNRESET on a clean EOF mid-way or at start.
Status read_full(int fd, std::span<std::uint8_t> out);
Status write_full(int fd, std::span<const std::uint8_t> data);
Status writev_full(int fd, struct iovec* iov, int count);
void set_recv_timeout(int fd, int ms);

}  // namespace sanagent::replicator
