#include "sanagent/replicator/generations.h"

#include <boost/test/unit_test.hpp>

using namespace sanagent::replicator;

namespace {
constexpr std::uint64_t A = 0xa, B = 0xb, C = 0xc, D = 0xd;
bool is(SyncDecision got, SyncDecision want) {
    return got == want;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(generations)

BOOST_AUTO_TEST_CASE(same_current_needs_nothing) {
    BOOST_TEST(is(decide({A, 0, {}}, {A, 0, {}}), SyncDecision::None));
}

BOOST_AUTO_TEST_CASE(blank_peer_gets_a_full_sync) {
    BOOST_TEST(is(decide({A, 0, {}}, {0, 0, {}}), SyncDecision::FullFromPrimary));
    BOOST_TEST(is(decide({0, 0, {}}, {A, 0, {}}), SyncDecision::Unrelated));
}

BOOST_AUTO_TEST_CASE(primary_wrote_while_peer_was_away) {
    // The primary started B at its first write without the peer; the peer still holds A.
    BOOST_TEST(is(decide({B, A, {}}, {A, 0, {}}), SyncDecision::BitmapFromPrimary));
}

BOOST_AUTO_TEST_CASE(peer_wrote_after_we_lost_it) {
    BOOST_TEST(is(decide({A, 0, {}}, {B, A, {}}), SyncDecision::PeerNewer));
}

BOOST_AUTO_TEST_CASE(both_wrote_is_split_brain) {
    BOOST_TEST(is(decide({B, A, {}}, {C, A, {}}), SyncDecision::SplitBrain));
    // Older split: the peer's bitmap generation is in our history.
    BOOST_TEST(is(decide({D, B, {A, 0}}, {C, A, {}}), SyncDecision::SplitBrain));
}

BOOST_AUTO_TEST_CASE(peer_older_than_the_bitmap_gets_a_full_sync) {
    BOOST_TEST(is(decide({C, B, {A, 0}}, {A, 0, {}}), SyncDecision::FullFromPrimary));
}

BOOST_AUTO_TEST_CASE(nothing_in_common_is_refused) {
    BOOST_TEST(is(decide({A, 0, {}}, {B, 0, {}}), SyncDecision::Unrelated));
    BOOST_TEST(to_string(SyncDecision::SplitBrain) == "split-brain");
}

BOOST_AUTO_TEST_SUITE_END()
