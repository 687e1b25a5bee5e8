// The replica's metadata file (beside the replica: "<replica>.meta"): volume
// id, size, bitmap granularity, flags, generation identifiers and the dirty
// bitmap. Layout (little-endian, docs/replicator.md):
//   [0, 4096)      header slot A   } written alternately, each with a sequence
//   [4096, 8192)   header slot B   } number and a CRC32C: a torn header write
//                                    leaves the other slot valid
//   [8192, ...)    dirty bitmap, one bit per `granularity` bytes of the volume
//   [al_offset, …) activity log: one bit per 4 MiB extent with writes that
//                  may be on one replica and not the other (4 KiB aligned)
//
// The header codec is pure (encode/decode over spans); MetadataFile owns the
// file and makes every change durable (fdatasync) before it returns.
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "sanagent/fd.h"
#include "sanagent/replicator/generations.h"
#include "sanagent/replicator/peer_protocol.h"
#include "sanagent/result.h"

namespace sanagent::replicator {

inline constexpr std::size_t kMetaHeaderSize = 4096;
inline constexpr std::uint64_t kMetaBitmapOffset = 2 * kMetaHeaderSize;
inline constexpr std::uint32_t kMetaVersion = 1;
inline constexpr std::uint32_t kMetaFlagConsistent = 1 << 0;
inline constexpr std::uint64_t kActivityExtent = 4ull << 20;

struct Metadata {
    std::uint64_t sequence = 0;
    peer::VolumeId volume_id{};
    std::uint64_t size = 0;
    std::uint32_t granularity = 64 * 1024;
    std::uint32_t flags = 0;
    Generations gens;

    bool consistent() const { return flags & kMetaFlagConsistent; }
    std::uint64_t bits() const { return (size + granularity - 1) / granularity; }
    std::uint64_t bitmap_bytes() const { return (bits() + 7) / 8; }
    std::uint64_t activity_bits() const { return (size + kActivityExtent - 1) / kActivityExtent; }
    std::uint64_t activity_bytes() const { return (activity_bits() + 7) / 8; }
    std::uint64_t activity_offset() const { return kMetaBitmapOffset + (bitmap_bytes() + 4095) / 4096 * 4096; }
};

std::array<std::uint8_t, kMetaHeaderSize> encode_metadata(const Metadata& meta);
// EBADMSG on wrong magic or CRC, EPROTO on an unknown version, EINVAL on
// values no writer produces (zero or non-power-of-two granularity).
Result<Metadata> decode_metadata(std::span<const std::uint8_t> bytes);

// A fresh random 64-bit generation id (never 0) and volume id.
std::uint64_t new_generation();
peer::VolumeId new_volume_id();

class MetadataFile {
public:
    static Result<std::unique_ptr<MetadataFile>> open(const std::string& path);
    static Result<std::unique_ptr<MetadataFile>> create(const std::string& path, const Metadata& initial);

    Metadata get() const;
    // Applies `change` and writes the header to the older slot, durably.
    template <typename F>
    Status update(F&& change) {
        std::lock_guard lock(mu_);
        Metadata next = meta_;
        change(next);
        return write_header_locked(next);
    }

    // Records [offset, offset+length) as not on the peer. The first record
    // after the peer was in sync starts a new generation (bitmap := current,
    // current := new). Durable before returning; costs I/O only when a bit
    // flips from 0 to 1.
    Status mark_dirty(std::uint64_t offset, std::uint64_t length);
    // Writes the bitmap pages record_missed() changed in memory, then fdatasync.
    Status flush_bitmap();
    void set_all_dirty();               // in memory; persist_bitmap() to keep it
    void clear_bit(std::uint64_t bit);  // in memory: a stale 1 on disk only costs a re-copy
    Status persist_bitmap();
    std::optional<std::uint64_t> next_dirty(std::uint64_t from) const;
    std::uint64_t dirty_bits() const;
    // The dirty regions as byte ranges (adjacent bits merged), in order; past
    // `max` ranges, one from the first to the end of the last. One pass
    // under the lock, zero bytes skipped.
    std::vector<std::pair<std::uint64_t, std::uint64_t>> dirty_ranges(std::size_t max) const;
    // Starts a new generation, durably, unless one is open: when this replica
    // moves on without the peer other than by a write it missed (a FLUSH
    // answered without the peer's, a resync about to change the peer).
    // `only_if_dirty`: only when regions are marked (a FLUSH with nothing
    // the peer may lack promises nothing new).
    Status open_generation(bool only_if_dirty);
    // Clears the bitmap, durably (a secondary once its resync covered the
    // regions it listed in its HELLO).
    Status clear_bitmap();
    // The peer now holds what we hold: retire the bitmap generation to
    // history and clear the bitmap, durably.
    Status finish_resync();

    // The activity log (after DRBD's): before a write is sent to an in-sync
    // peer and issued locally, its 4 MiB extents are recorded here, durably,
    // costing I/O only when an extent becomes active. If the primary dies
    // with writes in flight, the extents recorded here are the only places
    // the replicas can differ; the next start as primary turns them into
    // dirty bits (and so a bitmap resync) instead of a full sync.
    Status activate(std::uint64_t offset, std::uint64_t length);
    // A write the peer misses, in two steps so a caller holding its own lock
    // only pays the first: record_missed() sets the range's extents in the
    // activity log and its bits in the bitmap (lazily, covered by the log)
    // in one critical section, and returns the log change to wait for;
    // wait_activity() returns once that change is on disk. The range counts
    // as recorded only after both. A write the peer missed starts a new
    // generation if none is open (whether or not its bits were set already).
    // `new_generation` false is for ranges the peer acknowledged without
    // making them durable, marked when a link ends: the peer took them, so
    // no generation starts (a link that merely ended must not look like a
    // split brain later); they are resynced all the same.
    Result<std::uint64_t> record_missed(std::uint64_t offset, std::uint64_t length, bool new_generation = true);
    Status wait_activity(std::uint64_t change);
    // Changes with every activate(): retire_activity() clears the log only if
    // nothing was activated since the epoch the caller read before it made
    // every earlier write durable on both replicas.
    std::uint64_t activity_epoch() const;
    Result<bool> retire_activity(std::uint64_t epoch);
    std::vector<std::pair<std::uint64_t, std::uint64_t>> active_ranges() const;

    const std::string& path() const { return path_; }

private:
    Status write_header_locked(Metadata next);
    Status write_bitmap_range_locked(std::uint64_t first_byte, std::uint64_t last_byte);
    bool set_bits_locked(std::uint64_t offset, std::uint64_t length, bool lazy);
    Status start_generation_locked();
    Status sync_lazy_pages_locked();  // write the lazily changed pages, fdatasync
    void wait_no_commit_locked(std::unique_lock<std::mutex>& lock);
    std::uint64_t activate_locked(std::uint64_t offset, std::uint64_t length);  // -> change to wait for
    Status wait_activity_locked(std::unique_lock<std::mutex>& lock, std::uint64_t needed);
    std::vector<bool> lazy_page_;  // bitmap pages (4 KiB) changed in memory only
    bool any_lazy_page_ = false;
    std::string path_;
    UniqueFd fd_;
    mutable std::mutex mu_;
    Metadata meta_;
    std::vector<std::uint8_t> bitmap_;
    std::vector<std::uint8_t> activity_;
    std::uint64_t activity_epoch_ = 0;
    // Group commit of the activity log: an extent's bit is set in memory at
    // once and stamped with a change number; a write waits until a commit
    // covering its extents' numbers is on disk. One writer at a time commits
    // (outside mu_), so writes to extents already durable never wait behind
    // an fdatasync, and writes that activate meanwhile share the next one.
    std::vector<std::uint64_t> activity_stamp_;  // per extent: change number that set its bit
    std::uint64_t activity_changed_ = 0;         // last change number given out
    std::uint64_t activity_durable_ = 0;         // every change up to this one is on disk
    std::uint64_t activity_dirty_lo_ = UINT64_MAX, activity_dirty_hi_ = 0;  // bytes changed since the last commit
    bool activity_committing_ = false;
    std::condition_variable activity_cv_;
};

}  // namespace sanagent::replicator
