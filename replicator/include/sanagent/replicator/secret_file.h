// Secrets (the peers' pre-shared key, NBD's TLS keys) come only from files an
// attacker on the node could not have written or read: a regular file, not
// a symlink, owned by root (or the user sanrepd runs as), with no group or
// other permission bits.
#pragma once

#include <string.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "sanagent/result.h"

namespace sanagent::replicator {

// The whole file, at most `max_bytes`; `what` names it in errors ("key file").
// EPERM (with the chown/chmod to type) when its owner or mode is wrong,
// EFBIG when it is larger than `max_bytes`.
Result<std::vector<std::uint8_t>> read_secret_file(const std::string& path, const std::string& what,
                                                   std::size_t max_bytes);

// Overwrites a buffer that held a secret (a std::string or std::vector)
// when the scope ends, on every return path.
template <typename Buffer>
class WipeOnExit {
public:
    explicit WipeOnExit(Buffer& buffer) : buffer_(buffer) {}
    ~WipeOnExit() {
        if (!buffer_.empty()) explicit_bzero(buffer_.data(), buffer_.size() * sizeof(buffer_[0]));
    }
    WipeOnExit(const WipeOnExit&) = delete;
    WipeOnExit& operator=(const WipeOnExit&) = delete;

private:
    Buffer& buffer_;
};

}  // namespace sanagent::replicator
