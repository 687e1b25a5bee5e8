#include "sanagent/replicator/metadata.h"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "bytes.h"
#include "sanagent/replicator/crc32c.h"

namespace sanagent::replicator {

using bytes::load_le;
using bytes::store_le;

namespace {

constexpr char kMagic[8] = {'S', 'A', 'N', 'R', 'M', 'E', 'T', 'A'};
constexpr std::size_t kCrcOffset = kMetaHeaderSize - 4;

Status pwrite_all(int fd, const std::uint8_t* p, std::size_t n, std::uint64_t off, const std::string& path) {
    while (n > 0) {
        ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(off));
        if (w < 0) {
            if (errno == EINTR) continue;
            return last_errno("writing metadata " + path);
        }
        p += w;
        n -= static_cast<std::size_t>(w);
        off += static_cast<std::uint64_t>(w);
    }
    return {};
}

Status pread_all(int fd, std::uint8_t* p, std::size_t n, std::uint64_t off, const std::string& path) {
    while (n > 0) {
        ssize_t r = ::pread(fd, p, n, static_cast<off_t>(off));
        if (r < 0) {
            if (errno == EINTR) continue;
            return last_errno("reading metadata " + path);
        }
        if (r == 0) return Error{EBADMSG, "reading metadata " + path + ": file too short"};
        p += r;
        n -= static_cast<std::size_t>(r);
        off += static_cast<std::uint64_t>(r);
    }
    return {};
}

}  // namespace

std::array<std::uint8_t, kMetaHeaderSize> encode_metadata(const Metadata& m) {
    std::array<std::uint8_t, kMetaHeaderSize> b{};
    std::memcpy(b.data(), kMagic, 8);
    store_le<std::uint32_t>(b.data() + 8, kMetaVersion);
    store_le<std::uint32_t>(b.data() + 12, kMetaHeaderSize);
    store_le<std::uint64_t>(b.data() + 16, m.sequence);
    std::memcpy(b.data() + 24, m.volume_id.data(), 16);
    store_le<std::uint64_t>(b.data() + 40, m.size);
    store_le<std::uint32_t>(b.data() + 48, m.granularity);
    store_le<std::uint32_t>(b.data() + 52, m.flags);
    store_le<std::uint64_t>(b.data() + 56, m.gens.current);
    store_le<std::uint64_t>(b.data() + 64, m.gens.bitmap);
    store_le<std::uint64_t>(b.data() + 72, m.gens.history[0]);
    store_le<std::uint64_t>(b.data() + 80, m.gens.history[1]);
    store_le<std::uint64_t>(b.data() + 88, kMetaBitmapOffset);
    store_le<std::uint64_t>(b.data() + 96, m.bitmap_bytes());
    store_le<std::uint64_t>(b.data() + 104, m.activity_offset());
    store_le<std::uint64_t>(b.data() + 112, kActivityExtent);
    store_le<std::uint32_t>(b.data() + kCrcOffset, crc32c({b.data(), kCrcOffset}));
    return b;
}

Result<Metadata> decode_metadata(std::span<const std::uint8_t> b) {
    if (b.size() != kMetaHeaderSize) return Error{EBADMSG, "metadata header: wrong size"};
    if (std::memcmp(b.data(), kMagic, 8) != 0) return Error{EBADMSG, "metadata header: bad magic"};
    if (load_le<std::uint32_t>(b.data() + kCrcOffset) != crc32c(b.first(kCrcOffset)))
        return Error{EBADMSG, "metadata header: CRC mismatch"};
    auto version = load_le<std::uint32_t>(b.data() + 8);
    if (version != kMetaVersion) return Error{EPROTO, "metadata header: version " + std::to_string(version)};
    Metadata m;
    m.sequence = load_le<std::uint64_t>(b.data() + 16);
    std::memcpy(m.volume_id.data(), b.data() + 24, 16);
    m.size = load_le<std::uint64_t>(b.data() + 40);
    m.granularity = load_le<std::uint32_t>(b.data() + 48);
    m.flags = load_le<std::uint32_t>(b.data() + 52);
    m.gens.current = load_le<std::uint64_t>(b.data() + 56);
    m.gens.bitmap = load_le<std::uint64_t>(b.data() + 64);
    m.gens.history[0] = load_le<std::uint64_t>(b.data() + 72);
    m.gens.history[1] = load_le<std::uint64_t>(b.data() + 80);
    if (m.granularity < 4096 || !std::has_single_bit(m.granularity))
        return Error{EINVAL, "metadata header: granularity " + std::to_string(m.granularity)};
    // A resync sends a region as one message (at most 32 MiB of data): a
    // larger one (allowed before the 1 MiB limit on new files) could never
    // be resynced, so it is refused here, with what to do.
    if (m.granularity > (32u << 20))
        return Error{EINVAL, "metadata header: granularity " + std::to_string(m.granularity) +
                                 " bytes is above 32 MiB, more than a resync can send: make the metadata again "
                                 "(a full sync) with a granularity from 4K to 1M"};
    if (load_le<std::uint64_t>(b.data() + 96) != m.bitmap_bytes())
        return Error{EINVAL, "metadata header: bitmap size does not match volume size"};
    if (load_le<std::uint64_t>(b.data() + 104) != m.activity_offset() ||
        load_le<std::uint64_t>(b.data() + 112) != kActivityExtent)
        return Error{EINVAL, "metadata header: activity log layout differs from this version's"};
    return m;
}

std::uint64_t new_generation() {
    std::uint64_t v = 0;
    while (v == 0) {
        if (::getrandom(&v, sizeof v, 0) != sizeof v) std::abort();  // no entropy at all: nothing safe to do
    }
    return v;
}

peer::VolumeId new_volume_id() {
    peer::VolumeId id{};
    if (::getrandom(id.data(), id.size(), 0) != static_cast<ssize_t>(id.size())) std::abort();
    return id;
}

Result<std::unique_ptr<MetadataFile>> MetadataFile::open(const std::string& path) {
    auto f = std::unique_ptr<MetadataFile>(new MetadataFile);
    f->path_ = path;
    f->fd_.reset(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    if (!f->fd_.valid()) return last_errno("opening metadata " + path);
    std::array<std::uint8_t, kMetaHeaderSize> slot{};
    std::optional<Metadata> best;
    Error last{EBADMSG, "no valid header slot"};
    for (int i = 0; i < 2; ++i) {
        if (auto st = pread_all(f->fd_.get(), slot.data(), slot.size(), i * kMetaHeaderSize, path); !st) {
            last = st.error();
            continue;
        }
        auto m = decode_metadata(slot);
        if (!m) {
            last = m.error();
            continue;
        }
        if (!best || m->sequence > best->sequence) best = *m;
    }
    if (!best) return last.context("metadata " + path);
    f->meta_ = *best;
    f->bitmap_.resize(f->meta_.bitmap_bytes());
    if (auto st = pread_all(f->fd_.get(), f->bitmap_.data(), f->bitmap_.size(), kMetaBitmapOffset, path); !st)
        return st.error();
    f->activity_.resize(f->meta_.activity_bytes());
    if (auto st = pread_all(f->fd_.get(), f->activity_.data(), f->activity_.size(), f->meta_.activity_offset(), path);
        !st)
        return st.error();
    return f;
}

Result<std::unique_ptr<MetadataFile>> MetadataFile::create(const std::string& path, const Metadata& initial) {
    // Made whole under a temporary name, then renamed into place: a crash
    // or power cut midway must not leave a file at `path` with no valid
    // header (sanrepd would refuse to start until someone removed it), nor
    // a file that vanishes after the daemon used it (a primary would make
    // a new volume id at the next start).
    const std::string tmp = path + ".new";
    ::unlink(tmp.c_str());  // a crashed creation's leftover, never renamed into use
    auto f = std::unique_ptr<MetadataFile>(new MetadataFile);
    f->path_ = path;
    f->fd_.reset(::open(tmp.c_str(), O_RDWR | O_CLOEXEC | O_CREAT | O_EXCL, 0600));
    if (!f->fd_.valid()) return last_errno("creating metadata " + tmp);
    struct RemoveUnlessDone {
        const std::string& tmp;
        bool done = false;
        ~RemoveUnlessDone() {
            if (!done) ::unlink(tmp.c_str());
        }
    } cleanup{tmp};
    f->meta_ = initial;
    f->bitmap_.assign(initial.bitmap_bytes(), 0);
    f->activity_.assign(initial.activity_bytes(), 0);
    if (::ftruncate(f->fd_.get(), static_cast<off_t>(initial.activity_offset() + f->activity_.size())) < 0)
        return last_errno("sizing metadata " + tmp);
    // Both slots, so a later torn write of either leaves a valid one.
    Metadata first = initial;
    auto a = encode_metadata(first);
    if (auto st = pwrite_all(f->fd_.get(), a.data(), a.size(), 0, tmp); !st) return st.error();
    if (auto st = f->write_header_locked(first); !st) return st.error();  // fdatasyncs
    // NOREPLACE: a file someone made meanwhile is not overwritten. Where
    // the file system cannot do that (EINVAL: NFS, some FUSE), a hard link
    // gives the same promise: it fails if `path` exists.
    if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) < 0) {
        if (errno != EINVAL && errno != ENOSYS) return last_errno("renaming " + tmp + " to " + path);
        if (::link(tmp.c_str(), path.c_str()) < 0) return last_errno("linking " + tmp + " to " + path);
        ::unlink(tmp.c_str());
    }
    cleanup.done = true;
    auto dir = std::filesystem::path(path).parent_path();
    UniqueFd dir_fd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir_fd.valid() || ::fsync(dir_fd.get()) < 0) return last_errno("syncing the directory of " + path);
    return f;
}

Metadata MetadataFile::get() const {
    std::lock_guard lock(mu_);
    return meta_;
}

Status MetadataFile::write_header_locked(Metadata next) {
    next.sequence = meta_.sequence + 1;
    auto bytes = encode_metadata(next);
    std::uint64_t off = (next.sequence % 2) * kMetaHeaderSize;
    if (auto st = pwrite_all(fd_.get(), bytes.data(), bytes.size(), off, path_); !st) return st;
    if (::fdatasync(fd_.get()) < 0) return last_errno("fdatasync of metadata " + path_);
    meta_ = next;
    return {};
}

Status MetadataFile::write_bitmap_range_locked(std::uint64_t first_byte, std::uint64_t last_byte) {
    // Whole 4 KiB pages: the unit the device writes anyway.
    std::uint64_t begin = first_byte / 4096 * 4096;
    std::uint64_t end = std::min<std::uint64_t>(bitmap_.size(), (last_byte / 4096 + 1) * 4096);
    return pwrite_all(fd_.get(), bitmap_.data() + begin, end - begin, kMetaBitmapOffset + begin, path_);
}

bool MetadataFile::set_bits_locked(std::uint64_t offset, std::uint64_t length, bool lazy) {
    std::uint64_t first = offset / meta_.granularity;
    std::uint64_t last = std::min(meta_.bits() - 1, (offset + length - 1) / meta_.granularity);
    bool flipped = false;
    for (std::uint64_t b = first; b <= last; ++b) {
        auto mask = static_cast<std::uint8_t>(1u << (b % 8));
        if (!(bitmap_[b / 8] & mask)) {
            bitmap_[b / 8] |= mask;
            flipped = true;
            if (lazy) {
                if (lazy_page_.size() != (bitmap_.size() + 4095) / 4096)
                    lazy_page_.assign((bitmap_.size() + 4095) / 4096, false);
                lazy_page_[b / 8 / 4096] = true;
                any_lazy_page_ = true;
            }
        }
    }
    return flipped;
}

Status MetadataFile::start_generation_locked() {
    // The first write the peer misses starts a new generation; doing it
    // here, not at the disconnect, keeps a peer that merely blinked from
    // looking like a split brain.
    Metadata next = meta_;
    next.gens.bitmap = next.gens.current;
    next.gens.current = new_generation();
    return write_header_locked(next);  // its fdatasync covers any bitmap page written before
}

Status MetadataFile::mark_dirty(std::uint64_t offset, std::uint64_t length) {
    std::lock_guard lock(mu_);
    if (length == 0) return {};
    std::uint64_t first = offset / meta_.granularity;
    std::uint64_t last = std::min(meta_.bits() - 1, (offset + length - 1) / meta_.granularity);
    if (!set_bits_locked(offset, length, false)) return {};
    if (auto st = write_bitmap_range_locked(first / 8, last / 8); !st) return st;
    if (meta_.gens.bitmap == 0) return start_generation_locked();
    if (::fdatasync(fd_.get()) < 0) return last_errno("fdatasync of metadata " + path_);
    return {};
}

Status MetadataFile::sync_lazy_pages_locked() {
    if (!any_lazy_page_) return {};
    std::vector<std::size_t> written;
    for (std::size_t p = 0; p < lazy_page_.size(); ++p) {
        if (!lazy_page_[p]) continue;
        if (auto st = write_bitmap_range_locked(p * 4096, p * 4096); !st) return st;
        written.push_back(p);
    }
    if (::fdatasync(fd_.get()) < 0) return last_errno("fdatasync of metadata " + path_);
    // Only now: after a failed fdatasync the pages must be written again.
    for (auto p : written) lazy_page_[p] = false;
    any_lazy_page_ = false;
    return {};
}

void MetadataFile::wait_no_commit_locked(std::unique_lock<std::mutex>& lock) {
    // An activity commit writes outside the lock: let it land first.
    activity_cv_.wait(lock, [this] { return !activity_committing_; });
}

Status MetadataFile::flush_bitmap() {
    std::lock_guard lock(mu_);
    return sync_lazy_pages_locked();
}

void MetadataFile::set_all_dirty() {
    std::lock_guard lock(mu_);
    std::fill(bitmap_.begin(), bitmap_.end(), 0xff);
    // Bits past the end stay clear so counts are exact.
    std::uint64_t bits = meta_.bits();
    for (std::uint64_t b = bits; b < bitmap_.size() * 8; ++b)
        bitmap_[b / 8] &= static_cast<std::uint8_t>(~(1u << (b % 8)));
}

void MetadataFile::clear_bit(std::uint64_t bit) {
    std::lock_guard lock(mu_);
    bitmap_[bit / 8] &= static_cast<std::uint8_t>(~(1u << (bit % 8)));
}

Status MetadataFile::persist_bitmap() {
    std::lock_guard lock(mu_);
    if (bitmap_.empty()) return {};
    if (auto st = write_bitmap_range_locked(0, bitmap_.size() - 1); !st) return st;
    if (::fdatasync(fd_.get()) < 0) return last_errno("fdatasync of metadata " + path_);
    lazy_page_.assign(lazy_page_.size(), false);  // only once on disk
    any_lazy_page_ = false;
    return {};
}

std::optional<std::uint64_t> MetadataFile::next_dirty(std::uint64_t from) const {
    std::lock_guard lock(mu_);
    std::uint64_t bits = meta_.bits();
    for (std::uint64_t b = from; b < bits;) {
        if (b % 8 == 0 && bitmap_[b / 8] == 0) {
            b += 8;
            continue;
        }
        if (bitmap_[b / 8] & (1u << (b % 8))) return b;
        ++b;
    }
    return std::nullopt;
}

std::uint64_t MetadataFile::dirty_bits() const {
    std::lock_guard lock(mu_);
    std::uint64_t n = 0;
    for (auto byte : bitmap_) n += static_cast<std::uint64_t>(std::popcount(byte));
    return n;
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> MetadataFile::dirty_ranges(std::size_t max) const {
    std::lock_guard lock(mu_);
    std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
    const std::uint64_t g = meta_.granularity, size = meta_.size, bits = meta_.bits();
    std::uint64_t first = 0, end = 0;
    std::size_t ranges = 0;
    for (std::uint64_t b = 0; b < bits;) {
        if (b % 8 == 0 && bitmap_[b / 8] == 0) {
            b += 8;
            continue;
        }
        if (!(bitmap_[b / 8] & (1u << (b % 8)))) {
            ++b;
            continue;
        }
        std::uint64_t off = b * g, len = std::min<std::uint64_t>(g, size - off);
        if (ranges == 0) first = off;
        if (ranges > 0 && end == off) {
            if (ranges <= max) out.back().second += len;
        } else {
            ++ranges;
            if (ranges <= max) out.emplace_back(off, len);
        }
        end = off + len;
        ++b;
    }
    if (ranges > max) return {{first, end - first}};
    return out;
}

Status MetadataFile::open_generation(bool only_if_dirty) {
    std::lock_guard lock(mu_);
    if (meta_.gens.bitmap != 0) return {};
    if (only_if_dirty && std::all_of(bitmap_.begin(), bitmap_.end(), [](std::uint8_t b) { return b == 0; }))
        return {};
    return start_generation_locked();
}

Status MetadataFile::clear_bitmap() {
    {
        std::lock_guard lock(mu_);
        std::fill(bitmap_.begin(), bitmap_.end(), 0);
    }
    return persist_bitmap();
}

Status MetadataFile::finish_resync() {
    std::lock_guard lock(mu_);
    // The bitmap is not cleared here: the resync cleared each bit as its copy
    // was acknowledged. A bit set now is a write the peer missed after it
    // took our generation (the link failed since): it stays, and starts the
    // next generation, so the reconnect resyncs it instead of losing it.
    bool dirty = std::any_of(bitmap_.begin(), bitmap_.end(), [](std::uint8_t b) { return b != 0; });
    if (!bitmap_.empty()) {
        if (auto st = write_bitmap_range_locked(0, bitmap_.size() - 1); !st) return st;
    }
    Metadata next = meta_;
    if (next.gens.bitmap != 0) {
        next.gens.history[1] = next.gens.history[0];
        next.gens.history[0] = next.gens.bitmap;
        next.gens.bitmap = 0;
    }
    if (dirty) {
        next.gens.bitmap = next.gens.current;
        next.gens.current = new_generation();
    }
    auto st = write_header_locked(next);  // its fdatasync covers the bitmap written above
    if (st) {
        lazy_page_.assign(lazy_page_.size(), false);
        any_lazy_page_ = false;
    }
    return st;
}

std::uint64_t MetadataFile::activate_locked(std::uint64_t offset, std::uint64_t length) {
    ++activity_epoch_;
    if (length == 0 || activity_.empty()) return 0;
    if (activity_stamp_.size() != meta_.activity_bits()) activity_stamp_.assign(meta_.activity_bits(), 0);
    std::uint64_t first = offset / kActivityExtent;
    std::uint64_t last = std::min(meta_.activity_bits() - 1, (offset + length - 1) / kActivityExtent);
    // The newest change this write depends on: its own flips, or the flips
    // of an earlier write to the same extents whose commit may be under way.
    std::uint64_t needed = 0;
    for (std::uint64_t e = first; e <= last; ++e) {
        auto mask = static_cast<std::uint8_t>(1u << (e % 8));
        if (!(activity_[e / 8] & mask)) {
            activity_[e / 8] |= mask;
            activity_stamp_[e] = ++activity_changed_;
            activity_dirty_lo_ = std::min(activity_dirty_lo_, e / 8);
            activity_dirty_hi_ = std::max(activity_dirty_hi_, e / 8 + 1);
        }
        needed = std::max(needed, activity_stamp_[e]);
    }
    return needed;
}

Status MetadataFile::wait_activity_locked(std::unique_lock<std::mutex>& lock, std::uint64_t needed) {
    const std::uint64_t log_offset = meta_.activity_offset();  // fixed for the file's life
    // Bounded: each round either commits (a few system calls) or waits for
    // the committer, who always notifies when done.
    while (activity_durable_ < needed) {
        if (activity_committing_) {
            activity_cv_.wait(lock);
            continue;
        }
        const std::uint64_t covers = activity_changed_;
        if (activity_dirty_lo_ >= activity_dirty_hi_) {
            // Nothing left unwritten (a retire cleared the log meanwhile).
            activity_durable_ = std::max(activity_durable_, covers);
            break;
        }
        activity_committing_ = true;
        // Whole 4 KiB pages around the changed bytes, copied under the lock.
        std::uint64_t begin = activity_dirty_lo_ / 4096 * 4096;
        std::uint64_t end = std::min<std::uint64_t>(activity_.size(), (activity_dirty_hi_ + 4095) / 4096 * 4096);
        std::vector<std::uint8_t> page(activity_.begin() + static_cast<std::ptrdiff_t>(begin),
                                       activity_.begin() + static_cast<std::ptrdiff_t>(end));
        activity_dirty_lo_ = UINT64_MAX;
        activity_dirty_hi_ = 0;
        lock.unlock();
        Status st = pwrite_all(fd_.get(), page.data(), page.size(), log_offset + begin, path_);
        if (st && ::fdatasync(fd_.get()) < 0) st = last_errno("fdatasync of metadata " + path_);
        lock.lock();
        activity_committing_ = false;
        if (st) {
            activity_durable_ = std::max(activity_durable_, covers);
        } else {
            // Written again by the next commit.
            activity_dirty_lo_ = std::min(activity_dirty_lo_, begin);
            activity_dirty_hi_ = std::max(activity_dirty_hi_, end);
        }
        activity_cv_.notify_all();
        if (!st) return st;
    }
    return {};
}

Status MetadataFile::activate(std::uint64_t offset, std::uint64_t length) {
    std::unique_lock lock(mu_);
    return wait_activity_locked(lock, activate_locked(offset, length));
}

Result<std::uint64_t> MetadataFile::record_missed(std::uint64_t offset, std::uint64_t length, bool new_generation) {
    std::lock_guard lock(mu_);
    if (length == 0) return 0;
    std::uint64_t needed = activate_locked(offset, length);
    // One critical section with the log bit: a retire_activity() can never
    // fall between the two and clear the log while the bit is only in memory.
    set_bits_locked(offset, length, true);
    // Even where the bits were set already: they may be a link's unflushed
    // ranges, marked without a generation.
    if (new_generation && meta_.gens.bitmap == 0) {
        if (auto st = start_generation_locked(); !st) return st.error();
    }
    return needed;
}

Status MetadataFile::wait_activity(std::uint64_t change) {
    std::unique_lock lock(mu_);
    return wait_activity_locked(lock, change);
}

std::uint64_t MetadataFile::activity_epoch() const {
    std::lock_guard lock(mu_);
    return activity_epoch_;
}

Result<bool> MetadataFile::retire_activity(std::uint64_t epoch) {
    std::unique_lock lock(mu_);
    // A commit in flight writes bytes of the log: let it land first, so the
    // cleared log is the last thing written.
    wait_no_commit_locked(lock);
    if (epoch != activity_epoch_) return false;
    if (std::all_of(activity_.begin(), activity_.end(), [](std::uint8_t b) { return b == 0; })) return true;
    // Bits set lazily are covered by the log until they are on disk
    // themselves: durably first, then the log may go.
    if (auto st = sync_lazy_pages_locked(); !st) return st.error();
    std::fill(activity_.begin(), activity_.end(), 0);
    if (auto st = pwrite_all(fd_.get(), activity_.data(), activity_.size(), meta_.activity_offset(), path_); !st)
        return st.error();
    if (::fdatasync(fd_.get()) < 0) return last_errno("fdatasync of metadata " + path_);
    // Nothing is set now: whatever was pending is moot.
    activity_durable_ = activity_changed_;
    activity_dirty_lo_ = UINT64_MAX;
    activity_dirty_hi_ = 0;
    return true;
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> MetadataFile::active_ranges() const {
    std::lock_guard lock(mu_);
    std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
    for (std::uint64_t e = 0; e < meta_.activity_bits(); ++e) {
        if (activity_[e / 8] & (1u << (e % 8))) {
            std::uint64_t off = e * kActivityExtent;
            out.emplace_back(off, std::min(kActivityExtent, meta_.size - off));
        }
    }
    return out;
}

}  // namespace sanagent::replicator
