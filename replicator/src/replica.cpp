#include "sanagent/replicator/replica.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <vector>

namespace sanagent::replicator {

namespace {

// Free buffers by size class (the allocation's power-of-two size).
class BufferCache {
public:
    static BufferCache& instance() {
        // Never destroyed: a buffer freed during exit (a static owner, a
        // thread still running) must find it alive. What it keeps is
        // reclaimed with the process.
        static auto* cache = new BufferCache;
        return *cache;
    }
    std::uint8_t* take(std::size_t capacity) {
        {
            std::lock_guard lock(mu_);
            auto it = free_.find(capacity);
            if (it != free_.end() && !it->second.empty()) {
                auto* p = it->second.back();
                it->second.pop_back();
                kept_ -= capacity;
                return p;
            }
        }
        void* p = std::aligned_alloc(AlignedBuffer::kAlignment, capacity);
        if (!p) throw std::bad_alloc();
        return static_cast<std::uint8_t*>(p);
    }
    void give_back(std::uint8_t* p, std::size_t capacity) {
        {
            std::lock_guard lock(mu_);
            if (kept_ + capacity <= AlignedBuffer::kCacheBytes) {
                free_[capacity].push_back(p);
                kept_ += capacity;
                return;
            }
        }
        std::free(p);
    }

private:
    std::mutex mu_;
    std::map<std::size_t, std::vector<std::uint8_t*>> free_;
    std::size_t kept_ = 0;
};

std::size_t size_class(std::size_t size) {
    std::size_t c = AlignedBuffer::kAlignment;
    while (c < size) c <<= 1;
    return c;
}

}  // namespace

AlignedBuffer::AlignedBuffer(std::size_t size) : size_(size) {
    // Whole blocks of memory, as O_DIRECT wants; a size class so that freed
    // buffers fit the next request of a similar size.
    std::size_t capacity = size_class(size);
    data_ = std::unique_ptr<std::uint8_t, Release>(BufferCache::instance().take(capacity), Release{capacity});
}

void AlignedBuffer::Release::operator()(std::uint8_t* p) const {
    if (p) BufferCache::instance().give_back(p, capacity);
}

Result<Replica> Replica::open(const ReplicaOptions& options) {
    Replica r;
    r.path_ = options.path;
    int flags = O_RDWR | O_CLOEXEC;
    if (options.create_size) flags |= O_CREAT;
    UniqueFd fd(::open(options.path.c_str(), flags, 0600));
    if (!fd.valid()) return last_errno("opening replica " + options.path);
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0) return last_errno("stat of replica " + options.path);
    if (S_ISBLK(st.st_mode)) {
        r.block_device_ = true;
        std::uint64_t bytes = 0;
        if (::ioctl(fd.get(), BLKGETSIZE64, &bytes) < 0) return last_errno("size of block device " + options.path);
        r.size_ = bytes;
    } else if (S_ISREG(st.st_mode)) {
        r.size_ = static_cast<std::uint64_t>(st.st_size);
        r.preallocated_ = options.preallocate;
        if (options.create_size && r.size_ < options.create_size) {
            if (options.preallocate) {
                if (::fallocate(fd.get(), 0, 0, static_cast<off_t>(options.create_size)) < 0)
                    return last_errno("preallocating replica " + options.path);
            } else if (::ftruncate(fd.get(), static_cast<off_t>(options.create_size)) < 0) {
                return last_errno("sizing replica " + options.path);
            }
            r.size_ = options.create_size;
        }
    } else {
        return Error{EINVAL, "replica " + options.path + " is neither a regular file nor a block device"};
    }
    r.buffered_fd_ = std::move(fd);
    if (options.direct) {
        UniqueFd dfd(::open(options.path.c_str(), O_RDWR | O_CLOEXEC | O_DIRECT));
        if (dfd.valid()) {
            r.direct_fd_ = std::move(dfd);
        } else {
            // tmpfs and some FUSE file systems refuse O_DIRECT: still correct
            // through the page cache, only slower and double-cached.
            std::fprintf(stderr, "sanrepd: warning: replica %s: O_DIRECT refused (%s), using buffered I/O\n",
                         options.path.c_str(), std::strerror(errno));
        }
    }
    return r;
}

int Replica::fd_for(std::uint64_t offset, std::size_t length, const void* buffer) const {
    constexpr std::uint64_t a = AlignedBuffer::kAlignment;
    if (direct_fd_.valid() && offset % a == 0 && length % a == 0 && reinterpret_cast<std::uintptr_t>(buffer) % a == 0)
        return direct_fd_.get();
    return buffered_fd_.get();
}

Status Replica::read(std::uint64_t offset, std::span<std::uint8_t> out) const {
    int fd = fd_for(offset, out.size(), out.data());
    std::size_t done = 0;
    // Bounded: each pass either makes progress or returns.
    while (done < out.size()) {
        ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR) continue;
            return last_errno("reading replica " + path_ + " at " + std::to_string(offset + done));
        }
        if (n == 0) {
            std::memset(out.data() + done, 0, out.size() - done);  // past EOF of a shrunk file reads as zeroes
            break;
        }
        done += static_cast<std::size_t>(n);
    }
    return {};
}

void Replica::read_async(IoRing* ring, std::uint64_t offset, std::span<std::uint8_t> out,
                         std::function<void(Status)> done) const {
    int fd = fd_for(offset, out.size(), out.data());
    if (!ring || fd != direct_fd_.get()) {
        done(read(offset, out));
        return;
    }
    ring->read(fd, out.data(), out.size(), offset, [this, offset, out, done = std::move(done)](int res) {
        if (res < 0) {
            done(errno_error(-res, "reading replica " + path_ + " at " + std::to_string(offset)));
        } else if (static_cast<std::size_t>(res) < out.size()) {
            // Short (the end of a shrunk file, or a signal): the rest the blocking way.
            auto n = static_cast<std::size_t>(res);
            done(read(offset + n, out.subspan(n)));
        } else {
            done(Status{});
        }
    });
}

void Replica::write_async(IoRing* ring, std::uint64_t offset, std::span<const std::uint8_t> data, bool fua,
                          std::function<void(Status)> done) {
    int fd = fd_for(offset, data.size(), data.data());
    if (!ring || fd != direct_fd_.get()) {
        done(write(offset, data, fua));
        return;
    }
    ring->write(fd, data.data(), data.size(), offset, fua,
                [this, offset, data, fua, done = std::move(done)](int res) {
                    if (res < 0) {
                        done(errno_error(-res, "writing replica " + path_ + " at " + std::to_string(offset)));
                    } else if (res == 0 && !data.empty()) {
                        done(Error{EIO, "writing replica " + path_ + ": no progress"});
                    } else if (static_cast<std::size_t>(res) < data.size()) {
                        auto n = static_cast<std::size_t>(res);
                        done(write(offset + n, data.subspan(n), fua));
                    } else {
                        done(Status{});
                    }
                });
}

Status Replica::write(std::uint64_t offset, std::span<const std::uint8_t> data, bool fua) {
    int fd = fd_for(offset, data.size(), data.data());
    std::size_t done = 0;
    while (done < data.size()) {
        struct iovec iov {
            const_cast<std::uint8_t*>(data.data() + done), data.size() - done
        };
        // RWF_DSYNC makes FUA one system call instead of write + fdatasync.
        ssize_t n = ::pwritev2(fd, &iov, 1, static_cast<off_t>(offset + done), fua ? RWF_DSYNC : 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return last_errno("writing replica " + path_ + " at " + std::to_string(offset + done));
        }
        if (n == 0) return Error{EIO, "writing replica " + path_ + ": no progress"};
        done += static_cast<std::size_t>(n);
    }
    return {};
}

Status Replica::flush() {
    if (::fdatasync(buffered_fd_.get()) < 0) return last_errno("fdatasync of replica " + path_);
    return {};
}

Status Replica::trim(std::uint64_t offset, std::uint64_t length) {
    if (block_device_) {
        std::uint64_t range[2] = {offset, length};
        if (::ioctl(buffered_fd_.get(), BLKDISCARD, &range) < 0 && errno != EOPNOTSUPP)
            return last_errno("discarding on " + path_);
        return {};
    }
    if (preallocated_) return {};  // advisory: the space stays reserved
    if (::fallocate(buffered_fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                    static_cast<off_t>(length)) < 0 &&
        errno != EOPNOTSUPP)
        return last_errno("punching a hole in " + path_);
    return {};  // TRIM is advisory: where the file system cannot, the data stays
}

Status Replica::zero(std::uint64_t offset, std::uint64_t length, bool may_punch, bool fua) {
    if (!block_device_) {
        int mode = may_punch && !preallocated_ ? (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) : FALLOC_FL_ZERO_RANGE;
        if (::fallocate(buffered_fd_.get(), mode, static_cast<off_t>(offset), static_cast<off_t>(length)) == 0)
            return fua ? flush() : Status{};
        if (errno != EOPNOTSUPP && errno != EINVAL) return last_errno("zeroing a range of " + path_);
    } else {
        std::uint64_t range[2] = {offset, length};
        if (::ioctl(buffered_fd_.get(), BLKZEROOUT, &range) == 0) return fua ? flush() : Status{};
    }
    // Fallback: write zeroes, a bounded chunk at a time.
    constexpr std::size_t kChunk = 1 << 20;
    static const std::vector<std::uint8_t> zeroes(kChunk, 0);
    for (std::uint64_t done = 0; done < length;) {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, length - done));
        if (auto st = write(offset + done, {zeroes.data(), n}, false); !st) return st;
        done += n;
    }
    return fua ? flush() : Status{};
}

}  // namespace sanagent::replicator
