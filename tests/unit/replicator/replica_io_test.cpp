// The replica's two I/O paths agree: through an io_uring (aligned requests on
// the O_DIRECT descriptor, completing on the ring's thread) and the blocking
// calls (unaligned requests, or no ring). A real file in a temp dir (O_DIRECT
// where the file system allows it, else buffered: both paths then block).
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <mutex>

#include "sanagent/replicator/io_ring.h"
#include "sanagent/replicator/replica.h"

using namespace sanagent::replicator;
namespace fs = std::filesystem;

namespace {

struct TempFile {
    fs::path path;
    TempFile() {
        char tmpl[] = "/var/tmp/sanrep-replica-io-XXXXXX";
        int fd = ::mkstemp(tmpl);
        if (fd >= 0) ::close(fd);
        path = tmpl;
    }
    ~TempFile() {
        fs::remove(path);
        fs::remove(path.string() + ".meta");
    }
};

// Waits for one callback (bounded by the ring: every op completes).
struct Waiter {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    sanagent::Status status;
    std::function<void(sanagent::Status)> callback() {
        return [this](sanagent::Status st) {
            std::lock_guard lock(mu);
            status = st;
            done = true;
            cv.notify_all();
        };
    }
    sanagent::Status wait() {
        std::unique_lock lock(mu);
        cv.wait(lock, [this] { return done; });
        done = false;
        return status;
    }
};

}  // namespace

BOOST_AUTO_TEST_CASE(ring_and_blocking_paths_write_and_read_the_same_bytes) {
    TempFile f;
    auto replica = Replica::open({f.path.string(), 1 << 20, false, true});
    BOOST_TEST_REQUIRE(replica.ok());
    auto ring = IoRing::create(16);
    if (!ring) {
        BOOST_TEST_MESSAGE("no io_uring here (" << ring.error().message << "): only the blocking path is tested");
    }
    IoRing* r = ring ? ring->get() : nullptr;
    Waiter w;

    AlignedBuffer aligned(8192);
    for (std::size_t i = 0; i < aligned.size(); ++i) aligned.data()[i] = static_cast<std::uint8_t>(i * 7);
    replica->write_async(r, 65536, aligned.span(), false, w.callback());
    if (r) r->submit();
    BOOST_TEST(w.wait().ok());

    // Unaligned: the blocking path, called back before returning.
    std::vector<std::uint8_t> odd(1000, 0xab);
    replica->write_async(r, 65536 + 100, odd, true, w.callback());
    BOOST_TEST(w.wait().ok());

    AlignedBuffer back(8192);
    replica->read_async(r, 65536, back.span(), w.callback());
    if (r) r->submit();
    BOOST_TEST(w.wait().ok());
    for (std::size_t i = 0; i < back.size(); ++i) {
        std::uint8_t want = (i >= 100 && i < 1100) ? 0xab : static_cast<std::uint8_t>(i * 7);
        if (back.data()[i] != want) {
            BOOST_TEST(false, "byte " << i << " is " << int(back.data()[i]) << ", want " << int(want));
            break;
        }
    }
    std::vector<std::uint8_t> blocking(8192);
    BOOST_TEST(replica->read(65536, blocking).ok());
    BOOST_TEST(std::equal(blocking.begin(), blocking.end(), back.data()));

    // The file's last block, never written (a hole), reads as zeroes.
    AlignedBuffer tail(4096);
    std::fill(tail.data(), tail.data() + tail.size(), 0xee);
    replica->read_async(r, (1 << 20) - 4096, tail.span(), w.callback());
    if (r) r->submit();
    BOOST_TEST(w.wait().ok());
    BOOST_TEST(tail.data()[0] == 0);
}

BOOST_AUTO_TEST_CASE(a_ring_completes_everything_queued_before_it_goes) {
    TempFile f;
    auto replica = Replica::open({f.path.string(), 1 << 20, false, true});
    BOOST_TEST_REQUIRE(replica.ok());
    auto ring = IoRing::create(64);
    if (!ring) return;  // reported by the test above
    std::atomic<int> completed{0};
    std::vector<std::shared_ptr<AlignedBuffer>> bufs;
    for (int i = 0; i < 48; ++i) {
        bufs.push_back(std::make_shared<AlignedBuffer>(4096));
        replica->read_async(ring->get(), static_cast<std::uint64_t>(i) * 4096, bufs.back()->span(),
                            [&](sanagent::Status) { ++completed; });
    }
    // Queued, never submitted by hand: the destructor submits and waits.
    ring->reset();
    BOOST_TEST(completed.load() == 48);
}

BOOST_AUTO_TEST_CASE(the_after_batch_hook_follows_every_callback_on_the_ring_thread) {
    // The secondary gathers the acks of a batch in the callbacks and sends
    // them in the hook: every callback must be followed by a hook call on
    // the same thread, and a callback of the blocking path is not on it.
    TempFile f;
    auto replica = Replica::open({f.path.string(), 1 << 20, false, true});
    BOOST_TEST_REQUIRE(replica.ok());
    std::mutex mu;
    int gathered = 0, sent = 0, hooks = 0, off_thread = 0;
    IoRing* r = nullptr;
    auto ring = IoRing::create(64, [&] {
        std::lock_guard lock(mu);
        BOOST_TEST(r->on_completion_thread());
        ++hooks;
        sent += gathered;
        gathered = 0;
    });
    if (!ring) return;  // reported by the first test
    r = ring->get();
    std::vector<std::shared_ptr<AlignedBuffer>> bufs;
    for (int i = 0; i < 32; ++i) {
        bufs.push_back(std::make_shared<AlignedBuffer>(4096));
        replica->write_async(r, static_cast<std::uint64_t>(i) * 4096, bufs.back()->span(), false,
                             [&](sanagent::Status st) {
                                 std::lock_guard lock(mu);
                                 BOOST_TEST(st.ok());
                                 if (r->on_completion_thread())
                                     ++gathered;
                                 else
                                     ++off_thread;
                             });
    }
    r->submit();
    // Unaligned: the blocking path, called back on this thread.
    std::vector<std::uint8_t> odd(100, 1);
    replica->write_async(r, 7, odd, false, [&](sanagent::Status) {
        std::lock_guard lock(mu);
        if (!r->on_completion_thread()) ++off_thread;
    });
    ring->reset();              // waits for every operation and the last hook
    BOOST_TEST(gathered == 0);  // nothing gathered was left unsent
    // Where the file system refuses O_DIRECT every write blocks: none on the ring.
    BOOST_TEST_REQUIRE((sent == 32 || sent == 0));
    BOOST_TEST(off_thread == (sent == 32 ? 1 : 33));
    if (sent == 32) BOOST_TEST(hooks >= 1);
}
