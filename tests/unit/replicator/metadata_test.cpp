#include "sanagent/replicator/metadata.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <boost/test/unit_test.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

using namespace sanagent::replicator;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        char tmpl[] = "/tmp/sanrep-meta-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~TempDir() { fs::remove_all(path); }
};

Metadata sample() {
    Metadata m;
    m.size = 10ull << 20;  // 160 regions of 64 KiB
    m.volume_id[0] = 1;
    m.flags = kMetaFlagConsistent;
    m.gens.current = 0x1111;
    return m;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(metadata)

BOOST_AUTO_TEST_CASE(header_round_trip) {
    auto m = sample();
    m.sequence = 7;
    m.gens = {1, 2, {3, 4}};
    auto bytes = encode_metadata(m);
    auto d = decode_metadata(bytes);
    BOOST_TEST_REQUIRE(d.ok());
    BOOST_TEST(d->sequence == 7u);
    BOOST_TEST((d->gens == m.gens));
    BOOST_TEST(d->bits() == 160u);
    BOOST_TEST(d->consistent());
}

BOOST_AUTO_TEST_CASE(malformed_headers) {
    auto bytes = encode_metadata(sample());
    auto flipped = bytes;
    flipped[60] ^= 1;  // a generation bit: CRC must catch it
    BOOST_TEST(!decode_metadata(flipped).ok());
    auto magic = bytes;
    magic[0] = 'X';
    BOOST_TEST(!decode_metadata(magic).ok());
    BOOST_TEST(!decode_metadata(std::span(bytes).first(100)).ok());
    auto m = sample();
    m.granularity = 3000;  // not a power of two
    BOOST_TEST(!decode_metadata(encode_metadata(m)).ok());
}

// Made under a temporary name and renamed into place: no half-made file
// at the real path, a crashed creation's leftover replaced, an existing
// file never overwritten.
BOOST_AUTO_TEST_CASE(creation_is_all_or_nothing_and_never_overwrites) {
    TempDir dir;
    auto path = (dir.path / "r.meta").string();
    {
        std::FILE* stale = std::fopen((path + ".new").c_str(), "w");  // a crash's leftover
        BOOST_TEST_REQUIRE(stale != nullptr);
        std::fputs("half", stale);
        std::fclose(stale);
    }
    auto f = MetadataFile::create(path, sample());
    BOOST_TEST_REQUIRE(f.ok());
    BOOST_TEST(!fs::exists(path + ".new"));
    BOOST_TEST(MetadataFile::open(path).ok());
    auto again = MetadataFile::create(path, sample());
    BOOST_TEST(!again.ok());
    BOOST_TEST(!fs::exists(path + ".new"));
    BOOST_TEST((MetadataFile::open(path).ok()));
}

BOOST_AUTO_TEST_CASE(first_dirty_write_starts_a_generation_and_persists) {
    TempDir dir;
    auto path = (dir.path / "r.meta").string();
    {
        auto f = MetadataFile::create(path, sample());
        BOOST_TEST_REQUIRE(f.ok());
        BOOST_TEST((*f)->dirty_bits() == 0u);
        BOOST_TEST((*f)->mark_dirty(65536 * 3 + 10, 65536).ok());  // touches regions 3 and 4
        auto m = (*f)->get();
        BOOST_TEST(m.gens.bitmap == 0x1111u);
        BOOST_TEST(m.gens.current != 0x1111u);
        BOOST_TEST((*f)->mark_dirty(0, 1).ok());
        BOOST_TEST((*f)->get().gens.current == m.gens.current);  // one new generation, not one per write
    }
    auto f = MetadataFile::open(path);
    BOOST_TEST_REQUIRE(f.ok());
    BOOST_TEST((*f)->dirty_bits() == 3u);
    BOOST_TEST(*(*f)->next_dirty(1) == 3u);
    // A resync clears each bit as its copy is acknowledged, then retires.
    for (std::uint64_t b : {0u, 3u, 4u}) (*f)->clear_bit(b);
    auto before = (*f)->get().gens.current;
    BOOST_TEST((*f)->finish_resync().ok());
    auto m = (*f)->get();
    BOOST_TEST(m.gens.bitmap == 0u);
    BOOST_TEST(m.gens.history[0] == 0x1111u);
    BOOST_TEST(m.gens.current == before);
    BOOST_TEST((*f)->dirty_bits() == 0u);
}

BOOST_AUTO_TEST_CASE(a_bit_set_after_the_peer_took_our_generation_is_kept_under_a_new_one) {
    // RESYNC_DONE was applied by the peer, then the link failed and a write
    // missed it before finish_resync ran: the bit must survive.
    TempDir dir;
    auto f = MetadataFile::create((dir.path / "r.meta").string(), sample());
    BOOST_TEST_REQUIRE(f.ok());
    BOOST_TEST((*f)->mark_dirty(0, 4096).ok());
    auto during = (*f)->get().gens;  // bitmap 0x1111, current: what the peer takes
    (*f)->clear_bit(0);
    BOOST_TEST((*f)->record_missed(65536 * 7, 4096).ok());
    BOOST_TEST((*f)->finish_resync().ok());
    auto g = (*f)->get().gens;
    BOOST_TEST(g.history[0] == 0x1111u);
    BOOST_TEST(g.bitmap == during.current);  // = the peer's current: a bitmap resync next
    BOOST_TEST(g.current != during.current);
    BOOST_TEST((*f)->dirty_bits() == 1u);
    BOOST_TEST(*(*f)->next_dirty(0) == 7u);
}

// A link's unflushed ranges are marked without a generation (the peer took
// them); the first write the peer really misses starts one, although its
// bit was set already. dirty_ranges() merges adjacent regions; the last
// region is cut at the end of the volume; clear_bitmap() is durable.
BOOST_AUTO_TEST_CASE(unflushed_ranges_start_no_generation_a_missed_write_does) {
    TempDir dir;
    const auto path = (dir.path / "r.meta").string();
    {
        auto f = MetadataFile::create(path, sample());
        BOOST_TEST_REQUIRE(f.ok());
        auto change = (*f)->record_missed(65536, 2 * 65536, false);
        BOOST_TEST_REQUIRE(change.ok());
        BOOST_TEST((*f)->wait_activity(*change).ok());
        BOOST_TEST((*f)->get().gens.current == 0x1111u);
        BOOST_TEST((*f)->get().gens.bitmap == 0u);
        BOOST_TEST_REQUIRE((*f)->record_missed((10ull << 20) - 100, 100, false).ok());
        using Ranges = std::vector<std::pair<std::uint64_t, std::uint64_t>>;
        BOOST_TEST(((*f)->dirty_ranges(8) == Ranges{{65536, 2 * 65536}, {(10ull << 20) - 65536, 65536}}));
        BOOST_TEST(((*f)->dirty_ranges(1) == Ranges{{65536, (10ull << 20) - 65536}}));  // past max: one over all
        BOOST_TEST_REQUIRE((*f)->record_missed(65536, 4096).ok());  // its bit is set already
        BOOST_TEST((*f)->get().gens.bitmap == 0x1111u);
        BOOST_TEST((*f)->get().gens.current != 0x1111u);
        BOOST_TEST((*f)->clear_bitmap().ok());
    }
    auto f = MetadataFile::open(path);
    BOOST_TEST_REQUIRE(f.ok());
    BOOST_TEST((*f)->dirty_bits() == 0u);
}

BOOST_AUTO_TEST_CASE(a_torn_header_slot_falls_back_to_the_other) {
    TempDir dir;
    auto path = (dir.path / "r.meta").string();
    std::uint64_t seq = 0;
    {
        auto f = MetadataFile::create(path, sample());
        BOOST_TEST_REQUIRE(f.ok());
        BOOST_TEST((*f)->update([](Metadata& m) { m.gens.current = 0x2222; }).ok());
        seq = (*f)->get().sequence;
    }
    // Corrupt the newest slot as a torn write would.
    int fd = ::open(path.c_str(), O_WRONLY);
    std::uint8_t junk[16] = {0xde, 0xad};
    BOOST_TEST(::pwrite(fd, junk, sizeof junk, static_cast<off_t>((seq % 2) * kMetaHeaderSize + 56)) == 16);
    ::close(fd);
    auto f = MetadataFile::open(path);
    BOOST_TEST_REQUIRE(f.ok());
    BOOST_TEST((*f)->get().gens.current == 0x1111u);  // the previous, intact state
}

BOOST_AUTO_TEST_CASE(activity_log_survives_reopen_and_retires_only_when_quiet) {
    TempDir dir;
    auto path = (dir.path / "r.meta").string();
    {
        auto f = MetadataFile::create(path, sample());
        BOOST_TEST_REQUIRE(f.ok());
        auto epoch = (*f)->activity_epoch();
        BOOST_TEST((*f)->activate(kActivityExtent + 10, 4096).ok());
        BOOST_TEST(!*(*f)->retire_activity(epoch));  // a write activated since the epoch
        BOOST_TEST((*f)->active_ranges().size() == 1u);
    }
    auto f = MetadataFile::open(path);
    BOOST_TEST_REQUIRE(f.ok());
    auto ranges = (*f)->active_ranges();
    BOOST_TEST_REQUIRE(ranges.size() == 1u);
    BOOST_TEST(ranges[0].first == kActivityExtent);
    BOOST_TEST(ranges[0].second == kActivityExtent);  // the whole extent, inside the 10 MiB volume
    BOOST_TEST(*(*f)->retire_activity((*f)->activity_epoch()));
    BOOST_TEST((*f)->active_ranges().empty());
    auto again = MetadataFile::open(path);
    BOOST_TEST_REQUIRE(again.ok());
    BOOST_TEST((*again)->active_ranges().empty());
}

BOOST_AUTO_TEST_CASE(activations_from_many_threads_are_all_durable_when_they_return) {
    // The group commit: every activate() that returned has its extent in
    // the file, whichever thread's fdatasync carried it.
    TempDir dir;
    auto path = (dir.path / "r.meta").string();
    auto m = sample();
    m.size = 1ull << 30;  // 256 extents
    {
        auto f = MetadataFile::create(path, m);
        BOOST_TEST_REQUIRE(f.ok());
        std::vector<std::thread> threads;
        std::atomic<int> failures{0};
        for (int t = 0; t < 8; ++t) {
            threads.emplace_back([&, t] {
                // Each thread its own extents, every one also touched by a
                // neighbour thread, so some wait on a commit they did not start.
                for (std::uint64_t e = static_cast<std::uint64_t>(t); e < 256; e += 4)
                    if (!(*f)->activate(e * kActivityExtent + 512, 4096).ok()) ++failures;
            });
        }
        for (auto& th : threads) th.join();
        BOOST_TEST(failures.load() == 0);
        BOOST_TEST((*f)->active_ranges().size() == 256u);
    }
    auto f = MetadataFile::open(path);
    BOOST_TEST_REQUIRE(f.ok());
    BOOST_TEST((*f)->active_ranges().size() == 256u);
}

BOOST_AUTO_TEST_CASE(lazy_dirty_bits_reach_the_file_before_the_activity_log_lets_go) {
    TempDir dir;
    auto path = (dir.path / "r.meta").string();
    std::uint64_t current = 0;
    {
        auto f = MetadataFile::create(path, sample());
        BOOST_TEST_REQUIRE(f.ok());
        current = (*f)->get().gens.current;
        // As a degraded write does: the extent durable in the log, the bit lazily.
        auto change = (*f)->record_missed(65536 * 5, 4096);
        BOOST_TEST_REQUIRE(change.ok());
        BOOST_TEST((*f)->wait_activity(*change).ok());
        BOOST_TEST((*f)->dirty_bits() == 1u);
    }
    {
        // "Crashed": the bit is not in the file, but the new generation and
        // the active extent that stands for it are.
        auto f = MetadataFile::open(path);
        BOOST_TEST_REQUIRE(f.ok());
        BOOST_TEST((*f)->dirty_bits() == 0u);
        BOOST_TEST((*f)->get().gens.bitmap == current);
        BOOST_TEST((*f)->active_ranges().size() == 1u);
        // Retiring the log writes lazy bits first.
        BOOST_TEST((*f)->record_missed(65536 * 9, 1).ok());
        BOOST_TEST(*(*f)->retire_activity((*f)->activity_epoch()));
    }
    {
        auto f = MetadataFile::open(path);
        BOOST_TEST_REQUIRE(f.ok());
        BOOST_TEST((*f)->active_ranges().empty());
        BOOST_TEST((*f)->dirty_bits() == 1u);
        BOOST_TEST(*(*f)->next_dirty(0) == 9u);
        BOOST_TEST((*f)->record_missed(65536 * 2, 1).ok());
        BOOST_TEST((*f)->flush_bitmap().ok());
    }
    auto f = MetadataFile::open(path);
    BOOST_TEST_REQUIRE(f.ok());
    BOOST_TEST((*f)->dirty_bits() == 2u);
}

BOOST_AUTO_TEST_SUITE_END()
