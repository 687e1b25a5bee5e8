// peer::Reader: messages cut out of whatever the socket delivers, however the
// bytes are split, and a receive timeout mid-message keeps the stream framed.
#include <sys/socket.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "sanagent/fd.h"
#include "sanagent/replicator/net.h"
#include "sanagent/replicator/peer_io.h"

using namespace sanagent;
using namespace sanagent::replicator;

namespace {

struct SocketPair {
    UniqueFd a, b;
    SocketPair() {
        int fds[2];
        BOOST_TEST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
        a = UniqueFd(fds[0]);
        b = UniqueFd(fds[1]);
    }
};

// The bytes of an ACK, a small WRITE and a large WRITE, as a sender puts them on the wire.
std::vector<std::uint8_t> wire(std::vector<std::uint8_t>& small, std::vector<std::uint8_t>& large) {
    SocketPair p;
    std::vector<std::uint8_t> out;
    std::thread drain([&] {
        std::uint8_t b[65536];
        for (;;) {
            ssize_t n = ::read(p.b.get(), b, sizeof b);
            if (n <= 0) return;
            out.insert(out.end(), b, b + n);
        }
    });
    BOOST_TEST(peer::send(p.a.get(), peer::Type::Ack, 0, 1, peer::encode_ack(0)).ok());
    BOOST_TEST(peer::send_write(p.a.get(), 0, 2, 4096, small).ok());
    BOOST_TEST(peer::send_write(p.a.get(), peer::kFlagFua, 3, 1 << 20, large).ok());
    ::shutdown(p.a.get(), SHUT_WR);
    drain.join();
    return out;
}

void expect_three(peer::Reader& r, const std::vector<std::uint8_t>& small, const std::vector<std::uint8_t>& large) {
    auto m1 = r.receive();
    BOOST_TEST_REQUIRE(m1.ok());
    BOOST_TEST((m1->header.type == peer::Type::Ack));
    BOOST_TEST(*peer::decode_ack(m1->body) == 0);
    auto m2 = r.receive();
    BOOST_TEST_REQUIRE(m2.ok());
    BOOST_TEST(m2->header.seq == 2u);
    BOOST_TEST(m2->write_offset == 4096u);
    BOOST_TEST(std::equal(small.begin(), small.end(), m2->write_data->data()));
    auto m3 = r.receive();
    BOOST_TEST_REQUIRE(m3.ok());
    BOOST_TEST(m3->header.seq == 3u);
    BOOST_TEST(m3->header.flags == peer::kFlagFua);
    BOOST_TEST(m3->write_offset == (1u << 20));
    BOOST_TEST_REQUIRE(m3->write_data->size() == large.size());
    BOOST_TEST(std::equal(large.begin(), large.end(), m3->write_data->data()));
    auto end = r.receive();
    BOOST_TEST(!end.ok());
    BOOST_TEST(end.error().code == ECONNRESET);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(peer_reader)

BOOST_AUTO_TEST_CASE(messages_in_one_burst_and_split_anywhere) {
    std::vector<std::uint8_t> small(4096), large(3 << 20);
    for (std::size_t i = 0; i < small.size(); ++i) small[i] = static_cast<std::uint8_t>(i * 7);
    for (std::size_t i = 0; i < large.size(); ++i) large[i] = static_cast<std::uint8_t>(i * 13 + 1);
    auto bytes = wire(small, large);
    // Whole, then in pieces of 1, 23 and 4099 bytes: every cut through a
    // header, a write prefix and a payload.
    for (std::size_t piece : {bytes.size(), std::size_t{1}, std::size_t{23}, std::size_t{4099}}) {
        SocketPair p;
        std::thread writer([&] {
            for (std::size_t off = 0; off < bytes.size(); off += piece)
                (void)write_full(p.a.get(), {bytes.data() + off, std::min(piece, bytes.size() - off)});
            ::shutdown(p.a.get(), SHUT_WR);
        });
        peer::Reader r(p.b.get());
        expect_three(r, small, large);
        writer.join();
    }
}

BOOST_AUTO_TEST_CASE(a_timeout_mid_message_resumes_where_it_stopped) {
    std::vector<std::uint8_t> small(4096, 0x5a), large(1 << 20, 0xa5);
    auto bytes = wire(small, large);
    const std::size_t mid = bytes.size() - 300000;  // inside the large payload
    SocketPair p;
    set_recv_timeout(p.b.get(), 20);
    // The writer sends half of the ACK's header, then up to `mid`, then the
    // rest, each part only once the reader has timed out on the one before.
    std::mutex mu;
    std::condition_variable cv;
    int timeouts = 0;
    std::thread writer([&] {
        auto after = [&](int n) {
            std::unique_lock lock(mu);
            cv.wait_for(lock, std::chrono::seconds(30), [&] { return timeouts >= n; });
        };
        (void)write_full(p.a.get(), {bytes.data(), 10});
        after(1);
        (void)write_full(p.a.get(), {bytes.data() + 10, mid - 10});
        after(2);
        (void)write_full(p.a.get(), {bytes.data() + mid, bytes.size() - mid});
    });
    peer::Reader r(p.b.get());
    auto timed_out = [&] {
        std::lock_guard lock(mu);
        ++timeouts;
        cv.notify_all();
    };
    auto t = r.receive();
    BOOST_TEST_REQUIRE(!t.ok());
    BOOST_TEST((t.error().code == EAGAIN || t.error().code == EWOULDBLOCK));
    timed_out();
    // A loaded machine may pause the writer longer than the timeout: retry
    // those, bounded.
    auto next = [&] {
        for (int i = 0; i < 1000; ++i) {
            auto m = r.receive();
            if (m.ok() || (m.error().code != EAGAIN && m.error().code != EWOULDBLOCK)) return m;
        }
        return r.receive();
    };
    auto m1 = next();
    BOOST_TEST_REQUIRE(m1.ok());
    auto m2 = next();
    BOOST_TEST_REQUIRE(m2.ok());
    BOOST_TEST(m2->write_offset == 4096u);
    // The writer holds the last part back: this one must time out mid-payload.
    bool stalled = false;
    for (int i = 0; i < 1000 && !stalled; ++i) {
        auto m = r.receive();
        BOOST_TEST_REQUIRE(!m.ok());
        stalled = m.error().code == EAGAIN || m.error().code == EWOULDBLOCK;
    }
    BOOST_TEST_REQUIRE(stalled);
    timed_out();
    auto m3 = next();
    writer.join();
    BOOST_TEST_REQUIRE(m3.ok());
    BOOST_TEST(m3->write_offset == (1u << 20));
    BOOST_TEST(std::equal(large.begin(), large.end(), m3->write_data->data()));
}

BOOST_AUTO_TEST_CASE(a_corrupt_payload_is_refused) {
    std::vector<std::uint8_t> small(4096, 1), large(1 << 20, 2);
    auto bytes = wire(small, large);
    bytes[24 + 4 + 24 + 8 + 100] ^= 0x40;  // inside the small WRITE's data
    SocketPair p;
    std::thread writer([&] { (void)write_full(p.a.get(), bytes); });
    peer::Reader r(p.b.get());
    BOOST_TEST(r.receive().ok());
    auto bad = r.receive();
    p.b.reset();  // the writer's last bytes have nowhere to go now
    writer.join();
    BOOST_TEST_REQUIRE(!bad.ok());
    BOOST_TEST(bad.error().code == EBADMSG);
}

BOOST_AUTO_TEST_SUITE_END()
