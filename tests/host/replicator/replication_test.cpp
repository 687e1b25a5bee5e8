// sanrepd on the host: real daemons on loopback, a real NBD client, real
// files compared byte for byte. Bounded: every loop has a fixed count and
// every wait a deadline; the Cluster fixture kills and removes all it made.
#define BOOST_TEST_MODULE replicator_host
#include <poll.h>
#include <sys/stat.h>

#include <boost/test/unit_test.hpp>
#include <tuple>

#include "cluster.h"
#include "sanagent/process.h"
#include "sanagent/replicator/nbd_server.h"
#include "sanagent/replicator/peer_io.h"

using namespace sanrep_test;

namespace {

constexpr std::uint64_t kSize = 32ull << 20;
const std::string kSizeArg = "32M";

void write_and_log(NbdClient& c, AckedLog& log, std::mt19937_64& rng, int batches, int per_batch) {
    for (int b = 0; b < batches; ++b) {
        auto writes = random_writes(rng, kSize, per_batch);
        auto errs = c.write_batch(writes);
        BOOST_TEST_REQUIRE(errs.ok(), (errs.ok() ? "" : errs.error().message));
        for (std::size_t i = 0; i < writes.size(); ++i) {
            BOOST_TEST_REQUIRE((*errs)[i] == 0u);
            log.acked(writes[i].first, writes[i].second);
        }
    }
}

// A generation id as sanrepd's status shows it.
std::string hex_id(std::uint64_t id) {
    char b[17];
    std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(id));
    return b;
}

// The test as the secondary: one connection of the primary on `listener`,
// its HELLO answered with `gens` (or its own); returns the socket, the
// decision message (not acked yet) and the primary's generations.
std::tuple<UniqueFd, peer::Message, Generations> accept_link(int listener, const Generations* gens) {
    pollfd pfd{listener, POLLIN, 0};
    BOOST_TEST_REQUIRE(::poll(&pfd, 1, 20'000) == 1);
    UniqueFd fd(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
    BOOST_TEST_REQUIRE(fd.valid());
    set_recv_timeout(fd.get(), 20'000);
    auto hello = peer::receive(fd.get());
    BOOST_TEST_REQUIRE(hello.ok());
    BOOST_TEST_REQUIRE(int(hello->header.type) == int(peer::Type::Hello));
    auto theirs = peer::decode_hello(hello->body);
    BOOST_TEST_REQUIRE(theirs.ok());
    peer::Hello mine = *theirs;
    mine.primary = false;
    mine.consistent = true;
    mine.node = "the-test";
    mine.active.clear();
    if (gens) mine.gens = *gens;
    BOOST_TEST_REQUIRE(peer::send(fd.get(), peer::Type::Hello, 0, 0, peer::encode_hello(mine)).ok());
    auto decision = peer::receive(fd.get());
    BOOST_TEST_REQUIRE(decision.ok());
    BOOST_TEST_REQUIRE(int(decision->header.type) == int(peer::Type::Decision));
    return {std::move(fd), std::move(*decision), theirs->gens};
}

}  // namespace

BOOST_AUTO_TEST_CASE(two_replicas_hold_the_same_bytes) {
    Cluster k;
    int port = free_port();
    BOOST_TEST_REQUIRE(k.start_synced_pair(port, kSizeArg));
    auto c = NbdClient::connect(k.path("a.nbd"), "vol");
    BOOST_TEST_REQUIRE(c.ok());
    BOOST_TEST(c->size() == kSize);
    std::mt19937_64 rng(1);
    AckedLog log(kSize);
    write_and_log(*c, log, rng, 10, 16);
    BOOST_TEST(*c->simple(sanagent::replicator::nbd::CommandType::Flush, 0, 0) == 0u);
    // Zeroes and trims replicate too.
    BOOST_TEST(*c->simple(sanagent::replicator::nbd::CommandType::WriteZeroes, 1 << 20, 1 << 20) == 0u);
    BOOST_TEST(*c->simple(sanagent::replicator::nbd::CommandType::Trim, 4 << 20, 1 << 20) == 0u);
    std::fill(log.model.begin() + (1 << 20), log.model.begin() + (2 << 20), 0);
    std::fill(log.model.begin() + (4 << 20), log.model.begin() + (5 << 20), 0);
    std::vector<std::uint8_t> back;
    BOOST_TEST(*c->simple(sanagent::replicator::nbd::CommandType::Read, 0, 1 << 20, &back) == 0u);
    BOOST_TEST((back == std::vector<std::uint8_t>(log.model.begin(), log.model.begin() + (1 << 20))));
    // Past the end is EINVAL, and the connection stays usable.
    BOOST_TEST(*c->simple(sanagent::replicator::nbd::CommandType::Read, kSize - 512, 4096) ==
               sanagent::replicator::nbd::kErrInval);
    // `top -H` tells an admin which part is busy: the threads have names.
    auto primary = k.thread_names("a");
    for (auto want : {"nbd-conn", "nbd-accept", "peer-link", "peer-recv", "pool", "ctl"})
        BOOST_TEST(primary.count(want) == 1u, want << " missing on the primary");
    auto secondary = k.thread_names("b");
    for (auto want : {"peer-listen", "peer-session", "pool", "ctl"})
        BOOST_TEST(secondary.count(want) == 1u, want << " missing on the secondary");
    c->disconnect();
    BOOST_TEST(k.stop("a") == 0);
    BOOST_TEST(k.stop("b") == 0);
    auto a = read_file(k.path("a.img"));
    auto b = read_file(k.path("b.img"));
    BOOST_TEST(a.size() == kSize);
    BOOST_TEST((a == b));
    BOOST_TEST((a == std::string(log.model.begin(), log.model.end())));
}

BOOST_AUTO_TEST_CASE(peer_killed_during_writes_is_resynced_from_the_bitmap) {
    Cluster k;
    int port = free_port();
    BOOST_TEST_REQUIRE(k.start_synced_pair(port, kSizeArg));
    auto c = NbdClient::connect(k.path("a.nbd"), "vol");
    BOOST_TEST_REQUIRE(c.ok());
    std::mt19937_64 rng(2);
    AckedLog log(kSize);
    write_and_log(*c, log, rng, 4, 16);
    // What a client does now and then: the peer's copy of those writes is
    // durable, so only later ones count as possibly lost with the peer.
    BOOST_TEST(*c->simple(sanagent::replicator::nbd::CommandType::Flush, 0, 0) == 0u);
    // Crash the peer while a batch is in flight.
    std::thread killer([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        k.stop("b", SIGKILL);
    });
    write_and_log(*c, log, rng, 6, 16);
    killer.join();
    BOOST_TEST_REQUIRE(k.wait_state("a", "out-of-sync", 10));
    write_and_log(*c, log, rng, 4, 16);  // degraded: recorded in the bitmap
    auto st = k.status("a");
    std::uint64_t dirty = st["dirty_bytes"];
    BOOST_TEST(dirty > 0u);
    BOOST_TEST(st["generations"]["bitmap"] != "0000000000000000");
    k.start_secondary("b", "vol", port, kSizeArg);
    std::size_t before = log.entries.size();
    write_and_log(*c, log, rng, 4, 16);  // writes continue while the peer resyncs
    // Those may land before the reconnect and be dirty too: at most their
    // length plus a region at each end.
    std::uint64_t racing = 0;
    for (std::size_t i = before; i < log.entries.size(); ++i) racing += log.entries[i].length + 2 * 65536;
    BOOST_TEST_REQUIRE(k.wait_state("a", "in-sync"));
    auto done = k.status("a");
    std::uint64_t sent = done["peer"]["resync"]["bytes_sent"];
    BOOST_TEST_MESSAGE("dirty before reconnect " << dirty << " bytes, resync sent " << sent << " bytes");
    // Only dirty regions travel (the writes since the flush, which the peer
    // may have lost, and those it missed), not the volume.
    BOOST_TEST(sent <= dirty + racing);
    BOOST_TEST(sent < kSize);
    BOOST_TEST(done["dirty_bytes"] == 0u);
    write_and_log(*c, log, rng, 2, 16);
    BOOST_TEST(*c->simple(sanagent::replicator::nbd::CommandType::Flush, 0, 0) == 0u);
    c->disconnect();
    stop_and_expect_replicas_agree(k, log);
}

BOOST_AUTO_TEST_CASE(primary_crash_is_healed_from_the_activity_log) {
    Cluster k;
    int port = free_port();
    // The activity log is never retired here, so the crash below certainly
    // leaves the extents of the last writes active.
    const std::vector<std::string> no_retire = {"--activity-retire-ms", "600000"};
    BOOST_TEST_REQUIRE(k.start_synced_pair(port, kSizeArg, {}, no_retire));
    std::mt19937_64 rng(3);
    AckedLog log(kSize);
    {
        auto c = NbdClient::connect(k.path("a.nbd"), "vol");
        BOOST_TEST_REQUIRE(c.ok());
        write_and_log(*c, log, rng, 6, 16);
    }
    k.stop("a", SIGKILL);
    // Every acked write reached the secondary before its ack.
    BOOST_TEST(log.lost_in(read_file(k.path("b.img"))) == 0u);
    // Stage what a power loss can leave: a write that reached the primary's
    // disk but not the peer, inside an active extent.
    auto last = log.entries.back();
    std::vector<std::uint8_t> flipped = {static_cast<std::uint8_t>(log.model[last.offset] ^ 0xff)};
    {
        std::fstream f(k.path("a.img"), std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(static_cast<std::streamoff>(last.offset));
        f.put(static_cast<char>(flipped[0]));
    }
    log.acked(last.offset, flipped);  // the primary's data is the truth the peer must get
    k.start_primary("a", "vol", port, kSizeArg, no_retire);
    BOOST_TEST_REQUIRE(k.wait_state("a", "in-sync"));
    BOOST_TEST(read_file(k.path("a.log")).find("activity log holds") != std::string::npos);
    auto st = k.status("a");
    std::uint64_t sent = st["peer"]["resync"]["bytes_sent"];
    BOOST_TEST(sent > 0u);
    BOOST_TEST(sent <= kSize);  // the active extents, not more
    auto c = NbdClient::connect(k.path("a.nbd"), "vol");
    BOOST_TEST_REQUIRE(c.ok());
    write_and_log(*c, log, rng, 2, 16);
    c->disconnect();
    stop_and_expect_replicas_agree(k, log);
}

// Overlapping writes in one batch and nothing after: the second waits for
// the first and then runs on the worker pool, which must hand its write to
// the connection's io_uring itself (no later request will). Each round is
// answered within the client's receive timeout or the test fails.
BOOST_AUTO_TEST_CASE(overlapping_writes_with_nothing_after_them_complete) {
    Cluster k;
    int port = free_port();
    BOOST_TEST_REQUIRE(k.start_synced_pair(port, kSizeArg));
    auto c = NbdClient::connect(k.path("a.nbd"), "vol");
    BOOST_TEST_REQUIRE(c.ok());
    AckedLog log(kSize);
    for (int round = 0; round < 20; ++round) {
        std::uint64_t off = static_cast<std::uint64_t>(round) * 65536;
        std::vector<std::pair<std::uint64_t, std::vector<std::uint8_t>>> pair = {
            {off, std::vector<std::uint8_t>(8192, static_cast<std::uint8_t>(round))},
            {off + 4096, std::vector<std::uint8_t>(8192, static_cast<std::uint8_t>(round + 100))}};
        auto errs = c->write_batch(pair);
        BOOST_TEST_REQUIRE(errs.ok(), "round " << round << ": " << (errs.ok() ? "" : errs.error().message));
        for (std::size_t i = 0; i < pair.size(); ++i) {
            BOOST_TEST((*errs)[i] == 0u);
            log.acked(pair[i].first, pair[i].second);
        }
    }
    c->disconnect();
    stop_and_expect_replicas_agree(k, log);
}

// A client that sends chains of overlapping writes and disconnects without
// waiting: the connection ends with writes still queued behind others, which
// reach its io_uring only as those complete. The ring must outlive them
// (under the sanitizer a use after free shows here); the daemon goes on
// serving and stops cleanly, and the last write of each chain is what the
// replicas hold.
BOOST_AUTO_TEST_CASE(a_client_leaving_with_overlapping_writes_in_flight) {
    Cluster k;
    int port = free_port();
    BOOST_TEST_REQUIRE(k.start_synced_pair(port, kSizeArg));
    for (int round = 0; round < 10; ++round) {
        auto c = NbdClient::connect(k.path("a.nbd"), "vol");
        BOOST_TEST_REQUIRE(c.ok());
        for (std::uint64_t i = 0; i < 8; ++i) {
            std::vector<std::uint8_t> data(65536, static_cast<std::uint8_t>(round * 8 + i));
            auto h = nbd::encode_request({0, nbd::CommandType::Write, i, 1u << 20, 65536});
            BOOST_TEST_REQUIRE(write_full(c->fd(), h).ok());
            BOOST_TEST_REQUIRE(write_full(c->fd(), data).ok());
        }
        c->disconnect();
    }
    auto c = NbdClient::connect(k.path("a.nbd"), "vol");
    BOOST_TEST_REQUIRE(c.ok());
    // The last connection's writes may still be landing while this one
    // starts: bounded polling until the last of them is there.
    const std::vector<std::uint8_t> last(65536, 79);  // round 9, write 7
    std::vector<std::uint8_t> back;
    for (int i = 0; i < 250 && back != last; ++i) {
        BOOST_TEST_REQUIRE(*c->simple(nbd::CommandType::Read, 1u << 20, 65536, &back) == 0u);
        if (back != last) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    BOOST_TEST((back == last));
    BOOST_TEST(*c->simple(nbd::CommandType::Flush, 0, 0) == 0u);
    c->disconnect();
    BOOST_TEST(k.stop("a") == 0);
    BOOST_TEST(k.stop("b") == 0);
    BOOST_TEST((read_file(k.path("a.img")) == read_file(k.path("b.img"))));
}

BOOST_AUTO_TEST_CASE(secondary_power_loss_is_healed_from_the_unflushed_ranges) {
    Cluster k;
    int port = free_port();
    // No retire: its FLUSH would make the peer's copy durable by itself.
    const std::vector<std::string> no_retire = {"--activity-retire-ms", "600000"};
    BOOST_TEST_REQUIRE(k.start_synced_pair(port, kSizeArg, {}, no_retire));
    std::mt19937_64 rng(7);
    AckedLog log(kSize);
    auto c = NbdClient::connect(k.path("a.nbd"), "vol");
    BOOST_TEST_REQUIRE(c.ok());
    write_and_log(*c, log, rng, 2, 8);
    BOOST_TEST(*c->simple(sanagent::replicator::nbd::CommandType::Flush, 0, 0) == 0u);
    write_and_log(*c, log, rng, 1, 4);  // acknowledged by the peer, never flushed
    k.stop("b", SIGKILL);
    // The peer's disk lost its volatile cache: the last write is not there.
    flip_byte(k.path("b.img"), log.entries.back().offset);
    BOOST_TEST_REQUIRE(k.wait_state("a", "out-of-sync", 10));
    BOOST_TEST(read_file(k.path("a.log")).find("unflushed ranges on the peer") != std::string::npos);
    auto st = k.status("a");
    std::uint64_t dirty = st["dirty_bytes"];
    BOOST_TEST(dirty > 0u);
    BOOST_TEST(dirty < kSize);  // the writes since the flush, not the volume
    k.start_secondary("b", "vol", port, kSizeArg);
    BOOST_TEST_REQUIRE(k.wait_state("a", "in-sync"));
    write_and_log(*c, log, rng, 1, 4);
    c->disconnect();
    stop_and_expect_replicas_agree(k, log);
}

// RESYNC_DONE is answered after an fdatasync, like a FLUSH: a peer lost
// right after its full sync has nothing to get again (it once got the whole
// volume again, as "unflushed" copies).
BOOST_AUTO_TEST_CASE(peer_lost_right_after_a_full_sync_has_nothing_to_resync) {
    Cluster k;
    int port = free_port();
    BOOST_TEST_REQUIRE(k.start_synced_pair(port, kSizeArg));
    BOOST_TEST(k.status("a")["peer"]["resync"].value("bytes_sent", 0ull) == kSize);
    k.stop("b", SIGKILL);
    BOOST_TEST_REQUIRE(k.wait_state("a", "out-of-sync", 10));
    BOOST_TEST(k.status("a").value("dirty_bytes", 1ull) == 0u);
    BOOST_TEST(k.stop("a") == 0);
}

// A write that arrives while the link's handshake runs finds the peer not
// yet in sync: it is acknowledged with the local copy only and marked. If the
// handshake decided there was nothing to resync, the peer took that and
// counts itself consistent; the primary must then drop the link and
// reconnect with a bitmap resync (during which the peer is inconsistent),
// not go in sync without the write. The peer here is this test, speaking the
// peer protocol: it answers the primary's HELLO with the primary's own
// generations (nothing to do) and holds its ACK of the decision while a
// client writes.
BOOST_AUTO_TEST_CASE(a_write_during_the_handshake_is_resynced) {
    Cluster k;
    int port = free_port();
    auto listener = tcp_listen("127.0.0.1:" + std::to_string(port));
    BOOST_TEST_REQUIRE(listener.ok());
    k.start_primary("a", "vol", port, kSizeArg);
    auto [first, decision, gens] = accept_link(listener->get(), nullptr);
    BOOST_TEST_REQUIRE(int(*peer::decode_decision(decision.body)) == int(SyncDecision::None));

    // The decision is not acknowledged yet: the write goes to the primary's replica alone.
    BOOST_TEST_REQUIRE(k.wait_file("a.nbd"));
    auto c = NbdClient::connect(k.path("a.nbd"), "vol");
    BOOST_TEST_REQUIRE(c.ok());
    const std::uint64_t at = 5ull << 20;
    std::vector<std::uint8_t> data(4096, 0x5a);
    auto errs = c->write_batch({{at, data}});
    BOOST_TEST_REQUIRE(errs.ok());
    BOOST_TEST_REQUIRE((*errs)[0] == 0u);
    BOOST_TEST_REQUIRE(peer::send(first.get(), peer::Type::Ack, 0, decision.header.seq, peer::encode_ack(0)).ok());
    // The primary drops this link instead of sending on it ...
    BOOST_TEST(!peer::receive(first.get()).ok());
    first.reset();
    // ... and comes back proposing a bitmap resync to the same replica.
    auto [fd, again, unused] = accept_link(listener->get(), &gens);
    BOOST_TEST_REQUIRE(int(*peer::decode_decision(again.body)) == int(SyncDecision::BitmapFromPrimary));
    BOOST_TEST_REQUIRE(peer::send(fd.get(), peer::Type::Ack, 0, again.header.seq, peer::encode_ack(0)).ok());

    // The write arrives as a resync copy, then a FLUSH makes it durable here
    // and RESYNC_DONE hands over the generations. Every message is acked;
    // bounded by count and by the socket's receive timeout.
    bool copied = false, flushed_after_copy = false, done = false;
    for (int i = 0; i < 64 && !done; ++i) {
        auto m = peer::receive(fd.get());
        BOOST_TEST_REQUIRE(m.ok(), (m.ok() ? "" : m.error().message));
        const auto type = m->header.type;
        if (type == peer::Type::Write && (m->header.flags & peer::kFlagResync) && m->write_offset <= at &&
            at + data.size() <= m->write_offset + m->write_data->size()) {
            auto got = m->write_data->span().subspan(at - m->write_offset, data.size());
            copied = std::equal(got.begin(), got.end(), data.begin());
        }
        if (type == peer::Type::Flush && copied) flushed_after_copy = true;
        if (type == peer::Type::ResyncDone) {
            done = true;
            // Not acked yet: the primary has already retired its bitmap
            // generation (into its history) and hands over what it holds.
            // Were the ack lost, the primary must not be left tracking
            // from a generation the peer has moved past.
            auto handed = peer::decode_resync_done(m->body);
            BOOST_TEST_REQUIRE(handed.ok());
            auto g = k.status("a")["generations"];
            BOOST_TEST(g["bitmap"].get<std::string>() == "0000000000000000");
            BOOST_TEST(g["current"].get<std::string>() == hex_id(handed->gens.current));
            BOOST_TEST(g["history"][0].get<std::string>() == hex_id(handed->gens.history[0]));
            BOOST_TEST(handed->gens.bitmap == 0u);
        }
        BOOST_TEST_REQUIRE(peer::send(fd.get(), peer::Type::Ack, 0, m->header.seq, peer::encode_ack(0)).ok());
    }
    BOOST_TEST(copied);
    BOOST_TEST(flushed_after_copy);
    BOOST_TEST(done);
    BOOST_TEST(k.wait_state("a", "in-sync"));
    BOOST_TEST(k.status("a").value("dirty_bytes", 1ull) == 0u);
    c->disconnect();
}

// The ack watchdog fires under traffic too. The test is the secondary and
// acks every write but one, while a client keeps writing elsewhere: the
// primary drops the link within the ack timeout (before, it checked only
// after 250 ms without any ack, so the stuck write waited for the traffic
// to stop), and the unacked write is then recorded dirty and answered.
BOOST_AUTO_TEST_CASE(an_op_the_peer_never_acks_drops_the_link_under_traffic) {
    Cluster k;
    int port = free_port();
    auto listener = tcp_listen("127.0.0.1:" + std::to_string(port));
    BOOST_TEST_REQUIRE(listener.ok());
    k.start_primary("a", "vol", port, kSizeArg, {"--ack-timeout-ms", "1000"});
    auto [fd, decision, gens] = accept_link(listener->get(), nullptr);
    BOOST_TEST_REQUIRE(int(*peer::decode_decision(decision.body)) == int(SyncDecision::None));
    BOOST_TEST_REQUIRE(peer::send(fd.get(), peer::Type::Ack, 0, decision.header.seq, peer::encode_ack(0)).ok());
    BOOST_TEST_REQUIRE(k.wait_state("a", "in-sync"));

    const std::uint64_t stuck = 7ull << 20;
    std::atomic<bool> dropped{false};
    // Bounded by the count and by the socket's 20 s receive timeout.
    std::thread secondary([&dropped, stuck, link = fd.get()] {
        for (int i = 0; i < 100'000; ++i) {
            auto m = peer::receive(link);
            if (!m) break;
            if (m->header.type == peer::Type::Write && m->write_offset == stuck) continue;
            if (!peer::send(link, peer::Type::Ack, 0, m->header.seq, peer::encode_ack(0)).ok()) break;
        }
        dropped = true;
    });
    BOOST_TEST_REQUIRE(k.wait_file("a.nbd"));
    auto held = NbdClient::connect(k.path("a.nbd"), "vol");
    auto busy = NbdClient::connect(k.path("a.nbd"), "vol");
    BOOST_TEST_REQUIRE(held.ok());
    BOOST_TEST_REQUIRE(busy.ok());
    std::vector<std::uint8_t> data(4096, 0x3c);
    std::uint32_t stuck_result = ~0u;
    std::thread stuck_writer([&] {
        auto errs = held->write_batch({{stuck, data}});
        if (errs.ok()) stuck_result = (*errs)[0];
    });
    // Writes every 20 ms, far inside the 250 ms idle tick, for up to 8 s.
    bool dropped_under_traffic = false;
    for (int i = 0; i < 400 && !dropped_under_traffic; ++i) {
        auto errs = busy->write_batch({{(1ull << 20) + (i % 64) * 4096ull, data}});
        BOOST_TEST_REQUIRE(errs.ok());
        BOOST_TEST_REQUIRE((*errs)[0] == 0u);
        dropped_under_traffic = dropped;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    BOOST_TEST(dropped_under_traffic);
    ::shutdown(fd.get(), SHUT_RDWR);  // ends the test's secondary if the primary has not
    secondary.join();
    stuck_writer.join();  // bounded by the client's 20 s receive timeout
    BOOST_TEST(stuck_result == 0u);
    BOOST_TEST(k.status("a").value("dirty_bytes", 0ull) >= 4096u);
    BOOST_TEST(read_file(k.path("a.log")).find("no ack within 1000 ms") != std::string::npos);
    held->disconnect();
    busy->disconnect();
}

// A client that stops reading its replies holds up only itself. Its
// WRITEs' replies come mostly from the peer link's ack receiver, which
// serves every client of the volume: once the stalled client's socket is
// full, that thread must not wait for it. Another client's writes complete
// meanwhile; then the stalled client reads on and gets every reply (its
// READs' data too), whole and once.
BOOST_AUTO_TEST_CASE(a_client_that_stops_reading_replies_holds_up_only_itself) {
    Cluster k;
    int port = free_port();
    BOOST_TEST_REQUIRE(k.start_synced_pair(port, kSizeArg));
    auto stalled = NbdClient::connect(k.path("a.nbd"), "vol");
    BOOST_TEST_REQUIRE(stalled.ok());
    // Far more replies than its socket holds; sent from a thread, since the
    // server stops reading a client whose replies cannot leave. It ends
    // once the replies are read below (or the connection closes).
    constexpr std::uint64_t kWrites = 2000, kReads = 16;
    constexpr std::uint32_t kReadSize = 64 * 1024;
    std::thread sender([fd = stalled->fd()] {
        std::vector<std::uint8_t> data(4096, 0x3c);
        for (std::uint64_t i = 0; i < kWrites; ++i) {
            auto h = nbd::encode_request(
                {0, nbd::CommandType::Write, i, (i % 2048) * data.size(), std::uint32_t(data.size())});
            if (!write_full(fd, h) || !write_full(fd, data)) return;
        }
        for (std::uint64_t i = 0; i < kReads; ++i) {
            auto h =
                nbd::encode_request({0, nbd::CommandType::Read, kWrites + i, (16ull << 20) + i * kReadSize, kReadSize});
            if (!write_full(fd, h)) return;
        }
    });
    // On a failed check: the shutdown ends the sender's blocked write.
    struct EndSender {
        std::thread& t;
        int fd;
        ~EndSender() {
            if (!t.joinable()) return;
            ::shutdown(fd, SHUT_RDWR);
            t.join();
        }
    } end_sender{sender, stalled->fd()};
    // Time for the server to find the stalled client's socket full.
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    auto other = NbdClient::connect(k.path("a.nbd"), "vol");
    BOOST_TEST_REQUIRE(other.ok());
    set_recv_timeout(other->fd(), 5'000);
    std::mt19937_64 rng(11);
    auto errs = other->write_batch(random_writes(rng, 8ull << 20, 8));
    BOOST_TEST_REQUIRE(errs.ok(), (errs.ok() ? "" : "the other client's writes: " + errs.error().message));
    for (auto e : *errs) BOOST_TEST(e == 0u);
    BOOST_TEST(k.peer_state("a") == "in-sync");

    // The stalled client reads on: every reply once, the reads' data whole.
    std::vector<int> seen(kWrites + kReads, 0);
    std::vector<std::uint8_t> payload(kReadSize);
    bool whole = true;
    for (std::uint64_t n = 0; n < seen.size() && whole; ++n) {
        std::uint8_t rep[nbd::kSimpleReplySize];
        whole = read_full(stalled->fd(), rep).ok();
        std::uint32_t magic = (std::uint32_t(rep[0]) << 24) | (rep[1] << 16) | (rep[2] << 8) | rep[3];
        std::uint32_t err = (std::uint32_t(rep[4]) << 24) | (rep[5] << 16) | (rep[6] << 8) | rep[7];
        std::uint64_t handle = 0;
        for (int b = 8; b < 16; ++b) handle = (handle << 8) | rep[b];
        whole = whole && magic == nbd::kSimpleReplyMagic && err == 0 && handle < seen.size();
        if (!whole) break;
        ++seen[handle];
        if (handle >= kWrites) {
            whole = read_full(stalled->fd(), payload).ok() &&
                    std::all_of(payload.begin(), payload.end(), [](std::uint8_t b) { return b == 0; });
        }
    }
    BOOST_TEST_REQUIRE(whole);
    sender.join();
    BOOST_TEST(std::all_of(seen.begin(), seen.end(), [](int c) { return c == 1; }));
    stalled->disconnect();
    other->disconnect();
    BOOST_TEST(k.stop("a") == 0);
    BOOST_TEST(k.stop("b") == 0);
    BOOST_TEST((read_file(k.path("a.img")) == read_file(k.path("b.img"))));
}

// The same without a peer: every write then completes on the connection's
// ring thread. Once it blocked sending a stalled client's replies, the
// completions behind it went unhandled, and a write of that client that was
// done kept its region locked: another client's overlapping write waited
// for as long as the stalled one read nothing.
BOOST_AUTO_TEST_CASE(a_stalled_clients_finished_writes_do_not_hold_their_regions) {
    Cluster k;
    k.start_primary("a", "vol", 0, kSizeArg);
    auto stalled = NbdClient::connect(k.path("a.nbd"), "vol");
    BOOST_TEST_REQUIRE(stalled.ok());
    set_recv_timeout(stalled->fd(), 5'000);
    constexpr std::uint64_t kReads = 16;
    constexpr std::uint32_t kReadSize = 1u << 20;  // 16 MiB of replies: far more than its socket holds
    std::vector<std::uint8_t> reads;               // in one send: none arrives alone (answered by its reader)
    for (std::uint64_t i = 0; i < kReads; ++i) {
        auto h = nbd::encode_request({0, nbd::CommandType::Read, i, (i + 1) * kReadSize, kReadSize});
        reads.insert(reads.end(), h.begin(), h.end());
    }
    BOOST_TEST_REQUIRE(write_full(stalled->fd(), reads).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // its replies fill the socket
    std::vector<std::uint8_t> mine(4096, 0xaa), theirs(4096, 0xbb);
    auto h = nbd::encode_request({0, nbd::CommandType::Write, kReads, 0, std::uint32_t(mine.size())});
    BOOST_TEST_REQUIRE(write_full(stalled->fd(), h).ok());
    BOOST_TEST_REQUIRE(write_full(stalled->fd(), mine).ok());
    // Without io_uring (switched off by sysctl or seccomp) every request
    // runs on a reader and nothing here would be tested.
    BOOST_TEST_REQUIRE(read_file(k.path("a.log")).find("no io_uring") == std::string::npos);
    // Written (its latency recorded as it completes), its reply queued
    // behind the reads'.
    bool written = false;
    for (int i = 0; i < 100 && !written; ++i) {  // 5 s at most
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        written = k.status("a")["io"]["latency_us"]["write"].value("count", 0) == 1;
    }
    BOOST_TEST(written);

    auto other = NbdClient::connect(k.path("a.nbd"), "vol");
    BOOST_TEST_REQUIRE(other.ok());
    set_recv_timeout(other->fd(), 5'000);
    auto errs = other->write_batch({{0, theirs}});
    BOOST_TEST_REQUIRE(errs.ok(), (errs.ok() ? "" : "the overlapping write: " + errs.error().message));
    BOOST_TEST((*errs)[0] == 0u);
    std::vector<std::uint8_t> back;
    BOOST_TEST(*other->simple(nbd::CommandType::Read, 0, 4096, &back) == 0u);
    BOOST_TEST((back == theirs));  // in the order they arrived: the stalled client's first

    // The stalled client reads on: every reply once, whole.
    std::vector<int> seen(kReads + 1, 0);
    std::vector<std::uint8_t> payload(kReadSize);
    for (std::uint64_t n = 0; n <= kReads; ++n) {
        std::uint8_t rep[nbd::kSimpleReplySize];
        BOOST_TEST_REQUIRE(read_full(stalled->fd(), rep).ok());
        std::uint64_t handle = 0;
        for (int b = 8; b < 16; ++b) handle = (handle << 8) | rep[b];
        BOOST_TEST_REQUIRE(handle <= kReads);
        BOOST_TEST((rep[4] | rep[5] | rep[6] | rep[7]) == 0);
        ++seen[handle];
        if (handle < kReads) BOOST_TEST_REQUIRE(read_full(stalled->fd(), payload).ok());
    }
    BOOST_TEST(std::all_of(seen.begin(), seen.end(), [](int c) { return c == 1; }));
    stalled->disconnect();
    other->disconnect();
    BOOST_TEST(k.stop("a") == 0);
}

// A client that ends its requests (DISC) but leaves its replies unread is
// cut off after 10 s without progress. Until then its connection stayed for
// as long as it liked, and a demotion or reload waits for a volume's
// clients to leave. One that reads slowly, longer than that in all, gets
// every reply.
BOOST_AUTO_TEST_CASE(a_client_that_ends_without_reading_its_replies_is_cut_off) {
    Cluster k;
    k.start_primary("a", "vol", 0, kSizeArg);
    // 16 MiB of replies, far more than its socket holds, then DISC.
    auto reads_then_disc = [&](NbdClient& c) {
        for (std::uint64_t i = 0; i < 16; ++i) {
            auto h = nbd::encode_request({0, nbd::CommandType::Read, i, i << 20, 1u << 20});
            BOOST_TEST_REQUIRE(write_full(c.fd(), h).ok());
        }
        auto disc = nbd::encode_request({0, nbd::CommandType::Disconnect, 99, 0, 0});
        BOOST_TEST_REQUIRE(write_full(c.fd(), disc).ok());
    };
    {
        auto slow = NbdClient::connect(k.path("a.nbd"), "vol");
        BOOST_TEST_REQUIRE(slow.ok());
        reads_then_disc(*slow);
        std::vector<std::uint8_t> reply(nbd::kSimpleReplySize + (1u << 20));
        for (int i = 0; i < 16; ++i) {  // 16 x 0.7 s: past 10 s in all
            std::this_thread::sleep_for(std::chrono::milliseconds(700));
            BOOST_TEST_REQUIRE(read_full(slow->fd(), reply).ok(), "reply " << i);
            BOOST_TEST((reply[4] | reply[5] | reply[6] | reply[7]) == 0);
        }
    }
    BOOST_TEST(read_file(k.path("a.log")).find("left its replies unread") == std::string::npos);
    // One read of 16 MiB, alone: the reader that takes it answers it
    // itself, and once it waited for the client to read, it read no more:
    // not the DISC, so the cut-off never started.
    auto c = NbdClient::connect(k.path("a.nbd"), "vol");
    BOOST_TEST_REQUIRE(c.ok());
    auto read = nbd::encode_request({0, nbd::CommandType::Read, 1, 0, 16u << 20});
    BOOST_TEST_REQUIRE(write_full(c->fd(), read).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    auto disc = nbd::encode_request({0, nbd::CommandType::Disconnect, 99, 0, 0});
    BOOST_TEST_REQUIRE(write_full(c->fd(), disc).ok());
    auto clients = [&] { return k.status("a")["nbd"].value("clients", -1); };
    bool cut = false;
    for (int i = 0; i < 300 && !cut; ++i) {  // 30 s at most
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        cut = read_file(k.path("a.log")).find("left its replies unread") != std::string::npos && clients() == 0;
    }
    BOOST_TEST(cut);
    auto other = NbdClient::connect(k.path("a.nbd"), "vol");
    BOOST_TEST_REQUIRE(other.ok());
    BOOST_TEST(*other->simple(nbd::CommandType::Flush, 0, 0) == 0u);
    other->disconnect();
    BOOST_TEST(k.stop("a") == 0);
}

BOOST_AUTO_TEST_CASE(old_primary_back_as_secondary_gets_its_active_extents_resynced) {
    Cluster k;
    int port = free_port();
    const std::vector<std::string> no_retire = {"--activity-retire-ms", "600000"};
    BOOST_TEST_REQUIRE(k.start_synced_pair(port, kSizeArg, {}, no_retire));
    std::mt19937_64 rng(8);
    AckedLog log(kSize);
    {
        auto c = NbdClient::connect(k.path("a.nbd"), "vol");
        BOOST_TEST_REQUIRE(c.ok());
        write_and_log(*c, log, rng, 4, 8);
    }
    k.stop("a", SIGKILL);
    // A write that reached the dying primary's disk and never the peer (nor
    // an acknowledgement): the promoted peer's copy is the one kept.
    flip_byte(k.path("a.img"), log.entries.back().offset);
    BOOST_TEST(k.stop("b") == 0);
    // Promotion: b serves the volume, a comes back as its secondary.
    int port2 = free_port();
    k.start_secondary("a", "vol", port2, kSizeArg);
    k.start_primary("b", "vol", port2, kSizeArg);
    BOOST_TEST_REQUIRE(k.wait_state("b", "in-sync"));
    BOOST_TEST(read_file(k.path("a.log")).find("from a time as primary") != std::string::npos);
    BOOST_TEST(read_file(k.path("b.log")).find("the peer's activity log holds") != std::string::npos);
    auto st = k.status("b");
    std::uint64_t sent = st["peer"]["resync"]["bytes_sent"];
    BOOST_TEST(sent > 0u);
    auto c = NbdClient::connect(k.path("b.nbd"), "vol");
    BOOST_TEST_REQUIRE(c.ok());
    write_and_log(*c, log, rng, 1, 4);
    c->disconnect();
    stop_and_expect_replicas_agree(k, log);
}

BOOST_AUTO_TEST_CASE(split_brain_is_detected_and_nothing_is_overwritten) {
    Cluster k;
    int port = free_port();
    BOOST_TEST_REQUIRE(k.start_synced_pair(port, kSizeArg));
    std::mt19937_64 rng(4);
    AckedLog log_a(kSize), log_b(kSize);
    BOOST_TEST(k.stop("b") == 0);
    BOOST_TEST_REQUIRE(k.wait_state("a", "out-of-sync", 10));
    {
        auto c = NbdClient::connect(k.path("a.nbd"), "vol");
        BOOST_TEST_REQUIRE(c.ok());
        write_and_log(*c, log_a, rng, 2, 8);  // A moves on without B
    }
    BOOST_TEST(k.stop("a") == 0);
    // B is promoted by hand while A is down (the mistake a cluster manager
    // with quorum prevents), and written to.
    int nowhere = free_port();
    k.start_primary("b", "vol", nowhere, kSizeArg);
    {
        auto c = NbdClient::connect(k.path("b.nbd"), "vol");
        BOOST_TEST_REQUIRE(c.ok());
        write_and_log(*c, log_b, rng, 2, 8);
    }
    BOOST_TEST(k.stop("b") == 0);
    auto a_before = read_file(k.path("a.img"));
    auto b_before = read_file(k.path("b.img"));
    k.start_pair(port, kSizeArg);
    BOOST_TEST(k.wait_state("a", "split-brain"));
    BOOST_TEST(k.wait_state("b", "split-brain"));
    BOOST_TEST(k.stop("a") == 0);
    BOOST_TEST(k.stop("b") == 0);
    BOOST_TEST((read_file(k.path("a.img")) == a_before));
    BOOST_TEST((read_file(k.path("b.img")) == b_before));
    BOOST_TEST(log_a.lost_in(a_before) == 0u);
    BOOST_TEST(log_b.lost_in(b_before) == 0u);
}

BOOST_AUTO_TEST_CASE(wrong_volume_peer_is_refused) {
    Cluster k;
    int port = free_port();
    k.start_secondary("b", "other", port, kSizeArg);
    k.start_primary("a", "vol", port, kSizeArg);
    BOOST_TEST(k.wait_state("a", "refused"));
    BOOST_TEST(k.status("a")["peer"]["detail"].get<std::string>().find("no volume vol on this node") !=
               std::string::npos);
}

// Clients on TCP, however many sit in their handshake, leave slots for the
// UNIX socket (the node's own clients: the kernel's nbd device, qemu).
BOOST_AUTO_TEST_CASE(tcp_clients_cannot_take_the_unix_sockets_slots) {
    Cluster k;
    const int nbd_port = free_port();
    const std::string tcp = "127.0.0.1:" + std::to_string(nbd_port);
    k.start_primary("a", "vol", 0, kSizeArg, {"--nbd-tcp", tcp});
    BOOST_TEST_REQUIRE(k.wait_file("a.nbd"));
    // A connection the server took gets its greeting; one it refused is
    // closed without a byte.
    auto greeted = [](int fd) {
        std::uint8_t greeting[nbd::kGreetingSize];
        return read_full(fd, greeting).ok();
    };
    std::vector<UniqueFd> idle;
    for (unsigned i = 0; i < NbdServer::kMaxConnections - NbdServer::kReservedForUnix; ++i) {
        auto fd = tcp_connect(tcp, 2000);
        BOOST_TEST_REQUIRE(fd.ok());
        set_recv_timeout(fd->get(), 10'000);
        BOOST_TEST_REQUIRE(greeted(fd->get()));
        idle.push_back(std::move(*fd));
    }
    auto refused = tcp_connect(tcp, 2000);
    BOOST_TEST_REQUIRE(refused.ok());
    set_recv_timeout(refused->get(), 10'000);
    BOOST_TEST(!greeted(refused->get()));
    auto local = NbdClient::connect(k.path("a.nbd"), "vol");
    BOOST_TEST_REQUIRE(local.ok());
    BOOST_TEST(*local->simple(nbd::CommandType::Flush, 0, 0) == 0u);
    BOOST_TEST(read_file(k.path("a.log")).find("kept for the UNIX socket") != std::string::npos);
    local->disconnect();
}

// Out of file descriptors, a client waits in the listener's queue and the
// listener stays readable: the accept loop must back off, not spin on it.
BOOST_AUTO_TEST_CASE(out_of_descriptors_the_nbd_listener_backs_off) {
#if defined(__SANITIZE_ADDRESS__)
    // The sanitizers' runtime needs descriptors itself: UBSan's vptr check
    // probes memory through a pipe, and without one it reports every
    // virtual call as a bad object and aborts (seen: std::thread's _State).
    BOOST_TEST_MESSAGE("skipped under the sanitizers: their runtime needs file descriptors");
    return;
#endif
    Cluster k;
    k.start("a",
            {"prlimit", "--nofile=40:40", SANREPD_PATH, "--volume", "vol", "--role", "primary", "--replica",
             k.path("a.img"), "--size", kSizeArg, "--nbd-socket", k.path("a.nbd"), "--control", k.path("a.ctl")},
            true);
    BOOST_TEST_REQUIRE(k.wait_file("a.nbd"));
    // Clients (each held in its handshake: one descriptor) until the daemon
    // has none left; bounded, and stopped there, before the listener's
    // queue is full too.
    std::vector<UniqueFd> clients;
    auto out_of_descriptors = [&] {
        return read_file(k.path("a.log")).find("cannot accept a NBD connection") != std::string::npos;
    };
    bool logged = false;
    for (int i = 0; i < 48 && !logged; ++i) {
        auto fd = unix_connect(k.path("a.nbd"));
        BOOST_TEST_REQUIRE(fd.ok());
        clients.push_back(std::move(*fd));
        for (int wait = 0; wait < 5 && !logged; ++wait) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            logged = out_of_descriptors();
        }
    }
    BOOST_TEST_REQUIRE(logged);
    // Spinning costs a whole CPU: about 100 ticks a second.
    const long before = k.cpu_ticks("a");
    std::this_thread::sleep_for(std::chrono::seconds(1));
    BOOST_TEST(k.cpu_ticks("a") - before < 30);
    clients.clear();  // descriptors come back: clients are served again
    auto c = NbdClient::connect(k.path("a.nbd"), "vol");
    BOOST_TEST_REQUIRE(c.ok());
    BOOST_TEST(*c->simple(nbd::CommandType::Flush, 0, 0) == 0u);
    c->disconnect();
    BOOST_TEST(k.stop("a") == 0);
}

BOOST_AUTO_TEST_CASE(malformed_request_closes_only_that_connection) {
    Cluster k;
    k.start_primary("a", "vol", 0, kSizeArg);
    auto bad = NbdClient::connect(k.path("a.nbd"), "vol");
    BOOST_TEST_REQUIRE(bad.ok());
    std::vector<std::uint8_t> junk(28, 0x5a);
    BOOST_TEST(write_full(bad->fd(), junk).ok());
    std::uint8_t b;
    BOOST_TEST(::recv(bad->fd(), &b, 1, 0) == 0);  // closed by the server
    // An oversized write is refused by closing, too.
    auto big = NbdClient::connect(k.path("a.nbd"), "vol");
    BOOST_TEST_REQUIRE(big.ok());
    auto h = nbd::encode_request({0, nbd::CommandType::Write, 1, 0, 64u << 20});
    BOOST_TEST(write_full(big->fd(), h).ok());
    BOOST_TEST(::recv(big->fd(), &b, 1, 0) == 0);
    auto good = NbdClient::connect(k.path("a.nbd"), "vol");
    BOOST_TEST_REQUIRE(good.ok());
    BOOST_TEST(*good->simple(nbd::CommandType::Flush, 0, 0) == 0u);
    BOOST_TEST(read_file(k.path("a.log")).find("closing") != std::string::npos);
    // An oversized read carries no payload: it gets EINVAL and the
    // connection serves on, with no buffer of its size made; FUA on a read
    // or a flush is accepted (the spec requires it).
    BOOST_TEST(*good->simple(nbd::CommandType::Read, 0, 0xffffffffu) == nbd::kErrInval);
    std::vector<std::uint8_t> back;
    BOOST_TEST(*good->simple(nbd::CommandType::Read, 0, 4096, &back) == 0u);
    BOOST_TEST(back.size() == 4096u);
    for (auto type : {nbd::CommandType::Read, nbd::CommandType::Flush}) {
        auto fua = nbd::encode_request({nbd::kCmdFlagFua, type, 9, 0, type == nbd::CommandType::Read ? 512u : 0u});
        BOOST_TEST_REQUIRE(write_full(good->fd(), fua).ok());
        std::uint8_t rep[nbd::kSimpleReplySize + 512];
        BOOST_TEST_REQUIRE(
            read_full(good->fd(), std::span(rep, type == nbd::CommandType::Read ? sizeof rep : nbd::kSimpleReplySize))
                .ok());
        BOOST_TEST((rep[4] | rep[5] | rep[6] | rep[7]) == 0);  // no error
    }
    BOOST_TEST(k.peer_state("a") == "standalone");
    // Both sockets are owner-only from the moment they exist.
    struct stat st {};
    BOOST_TEST(::stat(k.path("a.ctl").c_str(), &st) == 0);
    BOOST_TEST((st.st_mode & 0777) == 0600u);
    BOOST_TEST(::stat(k.path("a.nbd").c_str(), &st) == 0);
    BOOST_TEST((st.st_mode & 0777) == 0600u);
}

BOOST_AUTO_TEST_CASE(real_clients_qemu_io_nbdinfo_nbdcopy) {
    if (!have_tool("qemu-io") || !have_tool("nbdinfo") || !have_tool("nbdcopy")) {
        BOOST_TEST_MESSAGE("skipped: qemu-utils or libnbd-bin not installed (./run deps installs them)");
        return;
    }
    Cluster k;
    int port = free_port();
    BOOST_TEST_REQUIRE(k.start_synced_pair(port, kSizeArg));
    std::string uri = "nbd+unix:///vol?socket=" + k.path("a.nbd");
    sanagent::SystemCommandRunner run;
    auto qemu = run.run(sanagent::Command({"qemu-io", "-f",
                                           "raw",     uri,
                                           "-c",      "write -P 0xab 0 1M",
                                           "-c",      "read -P 0xab 0 1M",
                                           "-c",      "write -P 0x11 1000 3000",
                                           "-c",      "read -P 0x11 1000 3000",
                                           "-c",      "write -z 2M 1M",
                                           "-c",      "read -P 0 2M 1M",
                                           "-c",      "write -f -P 0x22 4M 64k",
                                           "-c",      "discard 8M 64k",
                                           "-c",      "flush"},
                                          std::chrono::seconds(60)));
    BOOST_TEST_REQUIRE(qemu.ok());
    BOOST_TEST(qemu->exit_code == 0);
    BOOST_TEST(qemu->out.find("Pattern verification failed") == std::string::npos, qemu->out);
    auto info = run.run(sanagent::Command({"nbdinfo", "--json", uri}, std::chrono::seconds(30)));
    BOOST_TEST_REQUIRE(info.ok());
    BOOST_TEST(info->exit_code == 0);
    auto j = nlohmann::json::parse(info->out, nullptr, false);
    BOOST_TEST_REQUIRE(!j.is_discarded());
    BOOST_TEST(j["exports"][0]["export-size"] == kSize);
    BOOST_TEST(j["exports"][0]["can_flush"] == true);
    BOOST_TEST(j["exports"][0]["can_fua"] == true);
    // nbdcopy: a file in, then the volume out again, with its multiple
    // connections and parallel requests.
    std::string src = k.path("src.img"), out = k.path("out.img");
    {
        std::mt19937_64 rng(5);
        std::string data(kSize, '\0');
        for (std::size_t i = 0; i < data.size(); i += 8) {
            auto v = rng();
            std::memcpy(&data[i], &v, 8);
        }
        std::ofstream(src, std::ios::binary) << data;
    }
    auto in = run.run(sanagent::Command({"nbdcopy", src, uri}, std::chrono::seconds(60)));
    BOOST_TEST_REQUIRE(in.ok());
    BOOST_TEST(in->exit_code == 0, in->err);
    auto back = run.run(sanagent::Command({"nbdcopy", uri, out}, std::chrono::seconds(60)));
    BOOST_TEST_REQUIRE(back.ok());
    BOOST_TEST(back->exit_code == 0, back->err);
    BOOST_TEST(k.stop("a") == 0);
    BOOST_TEST(k.stop("b") == 0);
    auto expected = read_file(src);
    BOOST_TEST((read_file(out) == expected));
    BOOST_TEST((read_file(k.path("a.img")) == expected));
    BOOST_TEST((read_file(k.path("b.img")) == expected));
}

namespace {
std::uint64_t allocated_bytes(const std::string& file) {
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) return 0;
    return static_cast<std::uint64_t>(st.st_blocks) * 512;
}
}  // namespace

// A preallocated replica stays fully allocated: through the full sync of a
// blank secondary (zero regions travel as ZERO with MAY_PUNCH), an NBD TRIM
// and a WRITE_ZEROES that may punch, on both nodes. A sparse pair punches.
BOOST_AUTO_TEST_CASE(preallocated_replicas_stay_allocated_sparse_ones_punch) {
    for (bool prealloc : {true, false}) {
        BOOST_TEST_CONTEXT((prealloc ? "preallocated" : "sparse")) {
            Cluster k;
            int port = free_port();
            std::vector<std::string> extra;
            if (prealloc) extra = {"--preallocate"};
            BOOST_TEST_REQUIRE(k.start_synced_pair(port, kSizeArg, extra, extra));
            auto c = NbdClient::connect(k.path("a.nbd"), "vol");
            BOOST_TEST_REQUIRE(c.ok());
            std::vector<std::pair<std::uint64_t, std::vector<std::uint8_t>>> fill = {
                {0, std::vector<std::uint8_t>(4u << 20, 0x5c)}};
            auto errs = c->write_batch(fill);
            BOOST_TEST_REQUIRE(errs.ok());
            BOOST_TEST((*errs)[0] == 0u);
            for (auto name : {"a.img", "b.img"}) {
                auto bytes = allocated_bytes(k.path(name));
                if (prealloc)
                    BOOST_TEST(bytes >= kSize, name << " after the full sync: " << bytes);
                else
                    BOOST_TEST(bytes < kSize, name << " after the full sync: " << bytes);
            }
            BOOST_TEST(*c->simple(sanagent::replicator::nbd::CommandType::Trim, 0, 1u << 20) == 0u);
            BOOST_TEST(*c->simple(sanagent::replicator::nbd::CommandType::WriteZeroes, 1u << 20, 1u << 20) == 0u);
            BOOST_TEST(*c->simple(sanagent::replicator::nbd::CommandType::Flush, 0, 0) == 0u);
            for (auto name : {"a.img", "b.img"}) {
                auto bytes = allocated_bytes(k.path(name));
                if (prealloc)
                    BOOST_TEST(bytes >= kSize, name << " after TRIM and WRITE_ZEROES: " << bytes);
                else
                    BOOST_TEST(bytes <= (2u << 20) + 65536, name << " after TRIM and WRITE_ZEROES: " << bytes);
            }
            c->disconnect();
            BOOST_TEST(k.stop("a") == 0);
            BOOST_TEST(k.stop("b") == 0);
            auto a = read_file(k.path("a.img"));
            BOOST_TEST((a == read_file(k.path("b.img"))));
            BOOST_TEST(a[(1u << 20) + 5] == '\0');
            BOOST_TEST(a[(3u << 20)] == '\x5c');
        }
    }
}
