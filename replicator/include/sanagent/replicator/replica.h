// The local replica: one file or block device holding a volume's bytes.
//
// Opened O_DIRECT when the file system allows it, so a completed write is in
// the device's hands rather than the page cache and reads do not double-cache;
// requests not aligned to the direct-I/O block go through a second, buffered
// descriptor of the same file (the kernel writes back and invalidates the
// cached range around direct I/O, and the volume's range lock keeps writes to
// one range from racing). Durability is fdatasync either way.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "sanagent/fd.h"
#include "sanagent/replicator/io_ring.h"
#include "sanagent/result.h"

namespace sanagent::replicator {

// A heap buffer aligned for O_DIRECT.
//
// Its memory comes from a process-wide cache of recently freed buffers (by
// power-of-two size class, a bounded total kept): every request and every
// peer message needs one, and a fresh allocation of a large one is an mmap
// whose pages fault in, get zeroed and are unmapped again on free. Profiled
// at 1 MiB writes, that was a third of the daemon's CPU.
class AlignedBuffer {
public:
    static constexpr std::size_t kAlignment = 4096;
    // Bytes of free buffers the cache keeps at most; more are freed.
    static constexpr std::size_t kCacheBytes = 64u << 20;
    AlignedBuffer() = default;
    explicit AlignedBuffer(std::size_t size);
    std::uint8_t* data() { return data_.get(); }
    const std::uint8_t* data() const { return data_.get(); }
    std::size_t size() const { return size_; }
    std::span<std::uint8_t> span() { return {data_.get(), size_}; }
    std::span<const std::uint8_t> span() const { return {data_.get(), size_}; }

private:
    struct Release {
        Release() noexcept : capacity(0) {}
        explicit Release(std::size_t c) noexcept : capacity(c) {}
        std::size_t capacity;
        void operator()(std::uint8_t* p) const;
    };
    std::unique_ptr<std::uint8_t, Release> data_;
    std::size_t size_ = 0;
};

struct ReplicaOptions {
    std::string path;
    std::uint64_t create_size = 0;  // create (sparse) or extend a regular file to this size; 0 = use as is
    bool preallocate = false;       // fallocate the whole file instead of leaving it sparse, and keep it so
    bool direct = true;             // try O_DIRECT
};

class Replica {
public:
    static Result<Replica> open(const ReplicaOptions& options);

    const std::string& path() const { return path_; }
    std::uint64_t size() const { return size_; }
    bool direct() const { return direct_fd_.valid(); }

    Status read(std::uint64_t offset, std::span<std::uint8_t> out) const;
    // As read() and write(), through `ring` when the request can go to the
    // direct descriptor (aligned offset, length and buffer); otherwise, or
    // with no ring, the blocking call, and `done` runs before this returns.
    // With the ring, `done` runs on its completion thread.
    void read_async(IoRing* ring, std::uint64_t offset, std::span<std::uint8_t> out,
                    std::function<void(Status)> done) const;
    void write_async(IoRing* ring, std::uint64_t offset, std::span<const std::uint8_t> data, bool fua,
                     std::function<void(Status)> done);
    Status write(std::uint64_t offset, std::span<const std::uint8_t> data, bool fua);
    Status flush();
    // Deallocate (TRIM) or zero a range; zero with may_punch=false keeps the
    // blocks allocated (NBD_CMD_FLAG_NO_HOLE). A preallocated file is never
    // deallocated: TRIM leaves it as it is and zeroing keeps the blocks.
    bool preallocated() const { return preallocated_; }
    Status trim(std::uint64_t offset, std::uint64_t length);
    Status zero(std::uint64_t offset, std::uint64_t length, bool may_punch, bool fua);

private:
    int fd_for(std::uint64_t offset, std::size_t length, const void* buffer) const;
    std::string path_;
    std::uint64_t size_ = 0;
    bool block_device_ = false;
    // A file the admin asked to be fully allocated: punching holes into it
    // would give back the space it was meant to hold, and every later write
    // there would allocate again (on ext4 an allocating direct write takes
    // the inode lock exclusively: writes to the file run one at a time).
    bool preallocated_ = false;
    UniqueFd buffered_fd_;
    UniqueFd direct_fd_;
};

}  // namespace sanagent::replicator
