// Roles changed in a running sanrepd: promote and demote through sanctl (the
// cluster manager's way, later), a role changed in the file on a reload, and
// a standalone primary's writes reaching a peer that comes back.
#include <sys/mount.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <boost/test/unit_test.hpp>
#include <fstream>
#include <thread>

#include "cluster.h"
#include "sanagent/process.h"
#include "sanagent/replicator/net.h"
#include "sanagent/replicator/peer_io.h"

using namespace sanrep_test;

namespace {

constexpr std::uint64_t kSize = 16ull << 20;
const std::string kSizeArg = "16M";

void write_and_log(NbdClient& c, AckedLog& log, std::mt19937_64& rng, int batches) {
    for (int b = 0; b < batches; ++b) {
        auto writes = random_writes(rng, kSize, 8);
        auto errs = c.write_batch(writes);
        BOOST_TEST_REQUIRE(errs.ok(), (errs.ok() ? "" : errs.error().message));
        for (std::size_t i = 0; i < writes.size(); ++i) {
            BOOST_TEST_REQUIRE((*errs)[i] == 0u);
            log.acked(writes[i].first, writes[i].second);
        }
    }
}

// `sanctl replica ARGS... --control NODE.ctl`: exit code and what it printed.
sanagent::CommandOutput sanctl(Cluster& k, const std::string& node, std::vector<std::string> args) {
    std::vector<std::string> argv = {SANCTL_PATH, "replica"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--control", k.path(node + ".ctl")});
    sanagent::SystemCommandRunner run;
    auto r = run.run(sanagent::Command(argv, std::chrono::seconds(90)));
    BOOST_TEST_REQUIRE(r.ok());
    return *r;
}

// Both nodes configured alike, as a cluster manager wants them: each knows
// where to listen as secondary and where its peer listens.
void start_symmetric(Cluster& k, int port_a, int port_b, const std::string& role_a, const std::string& role_b,
                     const std::vector<std::string>& extra = {}) {
    for (auto [name, role, listen, peer] : {std::tuple{"a", role_a, port_a, port_b}, {"b", role_b, port_b, port_a}}) {
        std::vector<std::string> args = {"--volume",         "vol",
                       "--role",           role,
                       "--replica",        k.path(std::string(name) + ".img"),
                       "--size",           kSizeArg,
                       "--listen",         "127.0.0.1:" + std::to_string(listen),
                       "--peer",           "127.0.0.1:" + std::to_string(peer),
                       "--nbd-socket",     k.path(std::string(name) + ".nbd"),
                       "--control",        k.path(std::string(name) + ".ctl"),
                       "--threads",        "4",
                       "--ack-timeout-ms", "3000"};
        args.insert(args.end(), extra.begin(), extra.end());
        k.start(name, args);
        k.wait_file(std::string(name) + ".ctl");
    }
}

// The test as a volume's primary, over the peer protocol to a secondary
// on `port` (no key): one link at a time, one op at a time.
struct TestPrimary {
    explicit TestPrimary(int secondary_port) : port(secondary_port) {}
    int port;
    UniqueFd link;
    std::uint64_t seq = 0;
    std::vector<std::uint8_t> data = std::vector<std::uint8_t>(1 << 20, 0x42);
    peer::VolumeId volume_id{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

    // A link with `gens`, proposing `decision` (answer() has the reply);
    // returns the secondary's HELLO.
    peer::Hello connect(const Generations& gens, SyncDecision decision) {
        auto fd = tcp_connect("127.0.0.1:" + std::to_string(port), 5000);
        BOOST_TEST_REQUIRE(fd.ok());
        link = std::move(*fd);
        set_recv_timeout(link.get(), 20'000);
        peer::Hello mine;
        mine.primary = true;
        mine.consistent = true;
        mine.volume_id = volume_id;
        mine.volume = "vol";
        mine.size = kSize;
        mine.granularity = 64 << 10;
        mine.gens = gens;
        mine.node = "the-test";
        BOOST_TEST_REQUIRE(peer::send(link.get(), peer::Type::Hello, 0, 0, peer::encode_hello(mine)).ok());
        auto m = peer::receive(link.get());
        BOOST_TEST_REQUIRE(m.ok());
        BOOST_TEST_REQUIRE(int(m->header.type) == int(peer::Type::Hello));
        auto theirs = peer::decode_hello(m->body);
        BOOST_TEST_REQUIRE(theirs.ok());
        BOOST_TEST_REQUIRE(peer::send(link.get(), peer::Type::Decision, 0, ++seq, peer::encode_decision(decision)).ok());
        return *theirs;
    }
    // The secondary's answer to the last message: its errno.
    int answer() {
        auto m = peer::receive(link.get());
        BOOST_TEST_REQUIRE(m.ok(), (m.ok() ? "" : m.error().message));
        BOOST_TEST_REQUIRE(int(m->header.type) == int(peer::Type::Ack));
        BOOST_TEST_REQUIRE(m->header.seq == seq);
        return *peer::decode_ack(m->body);
    }
    int write(std::uint64_t offset) {
        BOOST_TEST_REQUIRE(peer::send_write(link.get(), 0, ++seq, offset, data).ok());
        return answer();
    }
    int resync_done(const Generations& gens) {
        peer::ResyncDone d{volume_id, gens};
        BOOST_TEST_REQUIRE(peer::send(link.get(), peer::Type::ResyncDone, 0, ++seq, peer::encode_resync_done(d)).ok());
        return answer();
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(roles)

// A planned switchover and back, with no restart: demote the primary once
// its client left, promote the secondary; the new primary finds its peer
// with the same generation and resyncs nothing.
BOOST_AUTO_TEST_CASE(switchover_by_demote_then_promote_without_restart) {
    Cluster k;
    int port_a = free_port(), port_b = free_port();
    start_symmetric(k, port_a, port_b, "primary", "secondary");
    BOOST_TEST_REQUIRE(k.wait_state("a", "in-sync"));
    std::mt19937_64 rng(21);
    AckedLog log(kSize);
    auto c = NbdClient::connect(k.path("a.nbd"), "vol");
    BOOST_TEST_REQUIRE(c.ok());
    write_and_log(*c, log, rng, 3);

    // Refusals that change nothing: b while a is connected to it, a while a
    // client uses it, a role it already has.
    auto r = sanctl(k, "b", {"promote", "vol"});
    BOOST_TEST(r.exit_code == 1);
    BOOST_TEST(r.err.find("demote it first") != std::string::npos, r.err);
    r = sanctl(k, "a", {"demote", "vol"});
    BOOST_TEST(r.exit_code == 1);
    BOOST_TEST(r.err.find("1 NBD client(s) connected") != std::string::npos, r.err);
    r = sanctl(k, "a", {"promote", "vol"});
    BOOST_TEST(r.exit_code == 0);
    BOOST_TEST(r.out.find("already primary") != std::string::npos, r.out);
    BOOST_TEST(k.peer_state("a") == "in-sync");
    write_and_log(*c, log, rng, 1);  // the client was not disturbed
    c->disconnect();

    r = sanctl(k, "a", {"demote", "vol"});
    BOOST_TEST_REQUIRE(r.exit_code == 0, r.err);
    BOOST_TEST(r.out.find("vol: secondary, waiting for the primary on 127.0.0.1:" + std::to_string(port_a)) !=
                   std::string::npos,
               r.out);
    BOOST_TEST(k.status("a").value("role", "") == "secondary");
    BOOST_TEST(!fs::exists(k.path("a.nbd")));
    BOOST_TEST_REQUIRE(k.wait_state("b", "waiting"));
    r = sanctl(k, "b", {"promote", "vol"});
    BOOST_TEST_REQUIRE(r.exit_code == 0, r.err);
    BOOST_TEST(r.out.find("primary, replicating to 127.0.0.1:" + std::to_string(port_a)) != std::string::npos, r.out);
    BOOST_TEST_REQUIRE(k.wait_state("b", "in-sync"));
    auto st = k.status("b");
    BOOST_TEST(st.value("role", "") == "primary");
    BOOST_TEST(st["peer"]["resync"].value("bytes_sent", 1ull) == 0u);  // same generation: nothing to copy
    BOOST_TEST(k.status("a")["peer"].value("peer_node", "") != "");

    auto c2 = NbdClient::connect(k.path("b.nbd"), "vol");
    BOOST_TEST_REQUIRE(c2.ok());
    std::vector<std::uint8_t> back;
    const auto& first = log.entries.front();
    BOOST_TEST_REQUIRE(c2->simple(nbd::CommandType::Read, first.offset, 4096, &back).ok());
    write_and_log(*c2, log, rng, 3);
    c2->disconnect();

    // And back again, the same way.
    BOOST_TEST_REQUIRE(sanctl(k, "b", {"demote", "vol"}).exit_code == 0);
    BOOST_TEST_REQUIRE(k.wait_state("a", "waiting"));
    BOOST_TEST_REQUIRE(sanctl(k, "a", {"promote", "vol"}).exit_code == 0);
    BOOST_TEST_REQUIRE(k.wait_state("a", "in-sync"));
    auto c3 = NbdClient::connect(k.path("a.nbd"), "vol");
    BOOST_TEST_REQUIRE(c3.ok());
    write_and_log(*c3, log, rng, 2);
    BOOST_TEST_REQUIRE(c3->simple(nbd::CommandType::Flush, 0, 0).ok());
    c3->disconnect();
    stop_and_expect_replicas_agree(k, log);
}

// The roles switched back and forth, a client writing on whichever node is
// primary and status requests hitting both control sockets all along: every
// switch goes through, nothing hangs, no write is lost, the replicas agree.
BOOST_AUTO_TEST_CASE(repeated_switchovers_under_status_requests) {
    Cluster k;
    int port_a = free_port(), port_b = free_port();
    start_symmetric(k, port_a, port_b, "primary", "secondary");
    BOOST_TEST_REQUIRE(k.wait_state("a", "in-sync"));
    std::atomic<bool> done{false};
    std::atomic<int> answered{0};
    std::thread poller([&] {
        while (!done) {  // bounded by the loop below
            for (const char* node : {"a", "b"})
                if (k.status(node).contains("role")) ++answered;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    });
    std::mt19937_64 rng(24);
    AckedLog log(kSize);
    std::string primary = "a", secondary = "b";
    for (int round = 0; round < 6; ++round) {
        {
            auto c = NbdClient::connect(k.path(primary + ".nbd"), "vol");
            BOOST_TEST_REQUIRE(c.ok());
            write_and_log(*c, log, rng, 1);
            c->disconnect();
        }
        auto r = sanctl(k, primary, {"demote", "vol"});
        BOOST_TEST_REQUIRE(r.exit_code == 0, "round " << round << ": " << r.err);
        BOOST_TEST_REQUIRE(k.wait_state(secondary, "waiting"));
        r = sanctl(k, secondary, {"promote", "vol"});
        BOOST_TEST_REQUIRE(r.exit_code == 0, "round " << round << ": " << r.err);
        BOOST_TEST_REQUIRE(k.wait_state(secondary, "in-sync"));
        std::swap(primary, secondary);
    }
    done = true;
    poller.join();
    BOOST_TEST(answered.load() > 0);
    BOOST_TEST(k.status(primary)["peer"]["resync"].value("bytes_sent", 1ull) == 0u);
    stop_and_expect_replicas_agree(k, log);
}

// Failover: the primary dies, the secondary is promoted and serves; the old
// primary comes back as secondary and gets what it missed.
BOOST_AUTO_TEST_CASE(failover_promote_after_the_primary_died) {
    Cluster k;
    int port_a = free_port(), port_b = free_port();
    start_symmetric(k, port_a, port_b, "primary", "secondary");
    BOOST_TEST_REQUIRE(k.wait_state("a", "in-sync"));
    std::mt19937_64 rng(22);
    AckedLog log(kSize);
    {
        auto c = NbdClient::connect(k.path("a.nbd"), "vol");
        BOOST_TEST_REQUIRE(c.ok());
        write_and_log(*c, log, rng, 3);
    }
    k.stop("a", SIGKILL);
    BOOST_TEST_REQUIRE(k.wait_state("b", "waiting"));
    auto r = sanctl(k, "b", {"promote", "vol"});
    BOOST_TEST_REQUIRE(r.exit_code == 0, r.err);
    {
        auto c = NbdClient::connect(k.path("b.nbd"), "vol");
        BOOST_TEST_REQUIRE(c.ok());
        write_and_log(*c, log, rng, 3);  // a misses these
    }
    BOOST_TEST(k.peer_state("b") != "in-sync");
    // a is back, as the secondary it now is (its file says primary: the
    // admin or the cluster manager starts it with the role it should have).
    k.start("a", {"--volume", "vol", "--role", "secondary", "--replica", k.path("a.img"), "--listen",
                  "127.0.0.1:" + std::to_string(port_a), "--peer", "127.0.0.1:" + std::to_string(port_b),
                  "--nbd-socket", k.path("a.nbd"), "--control", k.path("a.ctl"), "--threads", "4"});
    BOOST_TEST_REQUIRE(k.wait_state("b", "in-sync"));
    BOOST_TEST(k.status("b")["peer"]["resync"].value("bytes_sent", 0ull) > 0u);
    stop_and_expect_replicas_agree(k, log);
}

// A node's bitmap from its time as primary goes in its HELLO as a
// secondary, with its activity log: writes its last link's peer acked but
// never flushed are there once the log is retired, and the new primary
// resyncs them; the end of that resync clears them. Staged with a primary
// that ran without a peer (its first write marks the whole volume) and the
// test as the next primary.
BOOST_AUTO_TEST_CASE(a_secondary_lists_its_dirty_regions_in_its_hello) {
    Cluster k;
    k.start("b", {"--volume", "vol", "--role", "primary", "--replica", k.path("b.img"), "--size", kSizeArg,
                  "--nbd-socket", k.path("b.nbd"), "--control", k.path("b.ctl")});
    BOOST_TEST_REQUIRE(k.wait_file("b.nbd"));
    {
        auto c = NbdClient::connect(k.path("b.nbd"), "vol");
        BOOST_TEST_REQUIRE(c.ok());
        auto errs = c->write_batch({{1 << 20, std::vector<std::uint8_t>(4096, 0x17)}});
        BOOST_TEST_REQUIRE(errs.ok());
    }
    BOOST_TEST_REQUIRE(k.status("b").value("dirty_bytes", 0ull) == kSize);
    BOOST_TEST_REQUIRE(k.stop("b") == 0);
    int port = free_port();
    k.start_secondary("b", "vol", port, kSizeArg);

    // The first link only reads the HELLO (the test's volume id is not b's).
    TestPrimary primary(port);
    auto theirs = primary.connect({0x1, 0, {0, 0}}, SyncDecision::None);
    primary.link.reset();
    BOOST_TEST_REQUIRE(theirs.active.size() == 1u);
    BOOST_TEST(theirs.active[0].offset == 0u);
    BOOST_TEST(theirs.active[0].length == kSize);
    // Then as b's own next primary: a bitmap resync, RESYNC_DONE.
    primary.volume_id = theirs.volume_id;
    primary.connect(theirs.gens, SyncDecision::BitmapFromPrimary);
    BOOST_TEST_REQUIRE(primary.answer() == 0);
    BOOST_TEST_REQUIRE(primary.resync_done(theirs.gens) == 0);
    BOOST_TEST(k.status("b").value("dirty_bytes", 1ull) == 0u);
    primary.link.reset();
    BOOST_TEST(k.stop("b") == 0);
}

// The peer loses power right after a link's writes it acked but never
// flushed (its last write changed in its file); the primary stops, having
// written nothing since (with `flush`: after a client FLUSH it answered
// alone); the peer is promoted and written; the old primary comes back as
// its secondary. Returns that last write's offset and its bytes as the old
// primary held them when it stopped.
std::pair<std::uint64_t, std::string> stage_failover_after_a_lost_link(Cluster& k, int port_a, int port_b,
                                                                        bool flush) {
    // No retire: its FLUSH would make the peer's copies durable by itself.
    start_symmetric(k, port_a, port_b, "primary", "secondary", {"--activity-retire-ms", "600000"});
    BOOST_TEST_REQUIRE(k.wait_state("a", "in-sync"));
    std::mt19937_64 rng(31);
    AckedLog log(kSize);
    auto c = NbdClient::connect(k.path("a.nbd"), "vol");
    BOOST_TEST_REQUIRE(c.ok());
    write_and_log(*c, log, rng, 2);
    BOOST_TEST(*c->simple(nbd::CommandType::Flush, 0, 0) == 0u);
    write_and_log(*c, log, rng, 1);  // acknowledged by the peer, never flushed
    const auto last = log.entries.back();
    const std::string generation = k.status("a")["generations"].value("current", "");
    k.stop("b", SIGKILL);
    flip_byte(k.path("b.img"), last.offset);  // lost with b's volatile cache
    BOOST_TEST_REQUIRE(k.wait_state("a", "out-of-sync", 10));
    BOOST_TEST(read_file(k.path("a.log")).find("unflushed ranges on the peer") != std::string::npos);
    BOOST_TEST(k.status("a")["generations"].value("current", "") == generation);
    if (flush) BOOST_TEST(*c->simple(nbd::CommandType::Flush, 0, 0) == 0u);
    c->disconnect();
    BOOST_TEST(k.stop("a") == 0);
    auto held = read_file(k.path("a.img")).substr(last.offset, last.length);

    // b, promoted, takes writes a never sees.
    k.start("b", {"--volume", "vol", "--role", "primary", "--replica", k.path("b.img"), "--listen",
                  "127.0.0.1:" + std::to_string(port_b), "--peer", "127.0.0.1:" + std::to_string(port_a),
                  "--nbd-socket", k.path("b.nbd"), "--control", k.path("b.ctl"), "--threads", "4"});
    BOOST_TEST_REQUIRE(k.wait_file("b.nbd"));
    {
        auto cb = NbdClient::connect(k.path("b.nbd"), "vol");
        BOOST_TEST_REQUIRE(cb.ok());
        write_and_log(*cb, log, rng, 2);
    }
    k.start("a", {"--volume", "vol", "--role", "secondary", "--replica", k.path("a.img"), "--listen",
                  "127.0.0.1:" + std::to_string(port_a), "--peer", "127.0.0.1:" + std::to_string(port_b),
                  "--nbd-socket", k.path("a.nbd"), "--control", k.path("a.ctl"), "--threads", "4"});
    return {last.offset, held};
}

// Without a FLUSH since, the link's end marked those writes but started no
// generation: the old primary gets a bitmap resync, not a split brain (a
// generation started at the link's end made one), and the ranges it had
// marked, listed in its HELLO, are overwritten from the new primary (they
// were never flushed, as a disk may lose them): the replicas end equal.
BOOST_AUTO_TEST_CASE(a_failover_after_a_link_lost_with_unflushed_writes_is_no_split_brain) {
    Cluster k;
    int port_a = free_port(), port_b = free_port();
    stage_failover_after_a_lost_link(k, port_a, port_b, false);
    BOOST_TEST_REQUIRE(k.wait_state("b", "in-sync"), k.peer_state("b"));
    BOOST_TEST(read_file(k.path("b.log")).find("resyncing (bitmap-resync") != std::string::npos);
    BOOST_TEST(k.stop("a") == 0);
    BOOST_TEST(k.stop("b") == 0);
    BOOST_TEST((read_file(k.path("a.img")) == read_file(k.path("b.img"))));
}

// With a client FLUSH answered by the old primary alone, those writes are
// durable there as far as the client knows: that FLUSH started a
// generation, so the failover is a split brain, and the write is kept on
// the old primary (before, it was overwritten from the promoted peer).
BOOST_AUTO_TEST_CASE(a_flush_answered_without_the_peer_makes_the_failover_a_split_brain) {
    Cluster k;
    int port_a = free_port(), port_b = free_port();
    auto [offset, held] = stage_failover_after_a_lost_link(k, port_a, port_b, true);
    BOOST_TEST_REQUIRE(k.wait_state("b", "split-brain"), k.peer_state("b"));
    BOOST_TEST(k.stop("a") == 0);
    BOOST_TEST(k.stop("b") == 0);
    BOOST_TEST((read_file(k.path("a.img")).substr(offset, held.size()) == held));
}

// A replica that never finished a sync is not promoted unless forced.
BOOST_AUTO_TEST_CASE(an_inconsistent_secondary_is_not_promoted_unless_forced) {
    Cluster k;
    k.start_secondary("b", "vol", free_port(), kSizeArg, {"--nbd-socket", k.path("b.nbd")});
    auto r = sanctl(k, "b", {"promote", "vol"});
    BOOST_TEST(r.exit_code == 1);
    BOOST_TEST(r.err.find("inconsistent") != std::string::npos, r.err);
    BOOST_TEST(k.status("b").value("role", "") == "secondary");
    r = sanctl(k, "b", {"promote", "vol", "--force"});
    BOOST_TEST_REQUIRE(r.exit_code == 0, r.err);
    BOOST_TEST(r.out.find("standalone (no peer configured)") != std::string::npos, r.out);
    BOOST_TEST(k.status("b").value("role", "") == "primary");
    BOOST_TEST(k.wait_file("b.nbd"));
    // Demoting needs somewhere to listen: b has it.
    BOOST_TEST(sanctl(k, "b", {"demote", "vol"}).exit_code == 0);
    BOOST_TEST(k.stop("b") == 0);
}

// The test as the primary, against a secondary whose replica is a sparse
// file on a 4 MiB tmpfs: once that fills, a write fails there (ENOSPC).
// The replica then lacks what the primary sent, so it is marked
// inconsistent on disk before the error is acked: not promoted without
// --force, and a RESYNC_DONE in a session where a write failed is refused
// (before, it stayed "up-to-date", and RESYNC_DONE made it so again).
BOOST_AUTO_TEST_CASE(a_secondary_whose_write_fails_is_inconsistent_until_resynced) {
    Cluster k;
    const std::string small = k.path("small");
    fs::create_directory(small);
    BOOST_TEST_REQUIRE(::mount("tmpfs", small.c_str(), "tmpfs", 0, "size=4m") == 0, std::strerror(errno));
    struct Unmount {
        std::string dir;
        ~Unmount() { ::umount2(dir.c_str(), MNT_DETACH); }
    } unmount{small};
    int port = free_port();
    k.start_secondary("b", "vol", port, kSizeArg, {"--replica", small + "/b.img", "--nbd-socket", k.path("b.nbd")});

    TestPrimary primary(port);
    auto replica_state = [&] { return k.status("b")["replica"].value("state", ""); };

    // A full sync of the blank replica: one write, then RESYNC_DONE.
    const Generations first{0x1111, 0, {0, 0}};
    primary.connect(first, SyncDecision::FullFromPrimary);
    BOOST_TEST_REQUIRE(primary.answer() == 0);
    BOOST_TEST_REQUIRE(primary.write(0) == 0);
    BOOST_TEST_REQUIRE(primary.resync_done(first) == 0);
    BOOST_TEST_REQUIRE(replica_state() == "up-to-date");
    // In sync: writes until the tmpfs is full (bounded by the volume's 16 MiB).
    int failed = 0;
    std::uint64_t at = 0;
    for (at = 1 << 20; at < kSize && failed == 0; at += 1 << 20) failed = primary.write(at);
    BOOST_TEST_REQUIRE(failed == ENOSPC);
    BOOST_TEST(replica_state() == "inconsistent");
    primary.link.reset();
    auto r = sanctl(k, "b", {"promote", "vol"});
    BOOST_TEST(r.exit_code == 1);
    BOOST_TEST(r.err.find("inconsistent") != std::string::npos, r.err);

    // The primary comes back with a new generation from that one: a bitmap
    // resync, whose write fails again; its RESYNC_DONE is refused.
    const Generations second{0x2222, 0x1111, {0, 0}};
    primary.connect(second, SyncDecision::BitmapFromPrimary);
    BOOST_TEST_REQUIRE(primary.answer() == 0);
    BOOST_TEST(primary.write(at - (1 << 20)) == ENOSPC);
    BOOST_TEST(primary.resync_done(second) == EIO);
    BOOST_TEST(replica_state() == "inconsistent");
    BOOST_TEST(k.status("b")["generations"].value("current", "") == "0000000000001111");
    primary.link.reset();
    BOOST_TEST(read_file(k.path("b.log")).find("refusing RESYNC_DONE: an op of this resync failed here") !=
               std::string::npos);
    BOOST_TEST(k.stop("b") == 0);
}

// A primary started without a peer tracks nothing per write; its first
// write marks the whole volume, so a peer that returns gets everything
// again instead of being taken as equal.
BOOST_AUTO_TEST_CASE(a_standalone_primary_gives_a_returning_peer_a_full_resync) {
    Cluster k;
    int port = free_port();
    BOOST_TEST_REQUIRE(k.start_synced_pair(port, kSizeArg));
    std::mt19937_64 rng(23);
    AckedLog log(kSize);
    {
        auto c = NbdClient::connect(k.path("a.nbd"), "vol");
        BOOST_TEST_REQUIRE(c.ok());
        write_and_log(*c, log, rng, 2);
    }
    BOOST_TEST(k.stop("a") == 0);
    BOOST_TEST(k.stop("b") == 0);
    k.start_primary("a", "vol", 0, kSizeArg);  // standalone
    BOOST_TEST(k.status("a")["peer"].value("state", "") == "standalone");
    BOOST_TEST(k.status("a").value("dirty_bytes", 1ull) == 0u);  // nothing written yet
    {
        auto c = NbdClient::connect(k.path("a.nbd"), "vol");
        BOOST_TEST_REQUIRE(c.ok());
        write_and_log(*c, log, rng, 2);
    }
    BOOST_TEST(k.status("a").value("dirty_bytes", 0ull) == kSize);
    BOOST_TEST(k.stop("a") == 0);
    k.start_pair(port, kSizeArg);
    BOOST_TEST_REQUIRE(k.wait_state("a", "in-sync"));
    BOOST_TEST(k.status("a")["peer"]["resync"].value("regions_total", 0ull) == kSize / (64 << 10));
    stop_and_expect_replicas_agree(k, log);
}

// The file's role changed, then `systemctl reload sanrepd`: applied as a
// promotion, refused (and kept as it was) while a primary is connected; a
// role sanctl set survives a reload that leaves the file's role alone.
BOOST_AUTO_TEST_CASE(reload_applies_a_role_changed_in_the_file) {
    Cluster k;
    const int port_n = free_port(), port_p = free_port();
    const auto config = k.path("n.toml");
    auto write_config = [&](const std::string& role) {
        std::ofstream(config) << "[sanrepd]\nnode = \"node-n\"\nthreads = 4\n\n[volume.v]\nrole = \"" << role
                              << "\"\nreplica = \"" << k.path("n.img") << "\"\nsize = \"" << kSizeArg
                              << "\"\nlisten = \"127.0.0.1:" << port_n << "\"\nnbd_socket = \"" << k.path("n.nbd")
                              << "\"\ncontrol = \"" << k.path("n.ctl")
                              << "\"\n\n[volume.v.peer]\naddress = \"127.0.0.1:" << port_p << "\"\n";
    };
    auto reload_says = [&](const std::string& what) {
        const auto before = read_file(k.path("n.log")).size();
        k.signal("n", SIGHUP);
        for (int i = 0; i < 100; ++i) {
            auto log = read_file(k.path("n.log"));
            if (log.find(what, before) != std::string::npos) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        return false;
    };
    write_config("secondary");
    k.start("n", {"--config", config});
    BOOST_TEST_REQUIRE(k.wait_file("n.ctl"));
    k.start_primary("p", "v", port_n, kSizeArg);
    BOOST_TEST_REQUIRE(k.wait_state("p", "in-sync"));

    write_config("primary");
    BOOST_TEST_REQUIRE(reload_says("roles: 0 changed, 1 refused"));
    BOOST_TEST(read_file(k.path("n.log")).find("demote it first") != std::string::npos);
    BOOST_TEST(k.status("n").value("role", "") == "secondary");
    BOOST_TEST(k.peer_state("p") == "in-sync");  // untouched

    BOOST_TEST(k.stop("p") == 0);
    BOOST_TEST_REQUIRE(k.wait_state("n", "waiting"));
    BOOST_TEST_REQUIRE(reload_says("roles: 1 changed, 0 refused"));
    BOOST_TEST(k.status("n").value("role", "") == "primary");
    {
        auto c = NbdClient::connect(k.path("n.nbd"), "v");
        BOOST_TEST_REQUIRE(c.ok());
        std::vector<std::pair<std::uint64_t, std::vector<std::uint8_t>>> w = {
            {0, std::vector<std::uint8_t>(4096, 0x5a)}};
        BOOST_TEST((*c->write_batch(w))[0] == 0u);
        c->disconnect();
    }

    // sanctl's role stays through a reload of the same file, and status
    // says the file differs.
    BOOST_TEST(k.status("n").value("configured_role", "") == "primary");
    BOOST_TEST_REQUIRE(sanctl(k, "n", {"demote", "v"}).exit_code == 0);
    BOOST_TEST_REQUIRE(reload_says("roles: 0 changed, 0 refused"));
    BOOST_TEST(k.status("n").value("role", "") == "secondary");
    BOOST_TEST(k.status("n").value("configured_role", "") == "primary");
    auto shown = sanctl(k, "n", {"status", "v"});
    BOOST_TEST(shown.out.find("role set with sanctl; the configuration says primary") != std::string::npos, shown.out);
    BOOST_TEST(k.stop("n") == 0);
    BOOST_TEST(read_file(k.path("n.img"))[0] == '\x5a');
}

BOOST_AUTO_TEST_SUITE_END()
