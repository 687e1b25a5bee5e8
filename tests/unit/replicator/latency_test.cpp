#include "sanagent/replicator/latency.h"

#include <boost/test/unit_test.hpp>

using namespace sanagent::replicator;
using std::chrono::microseconds;

BOOST_AUTO_TEST_SUITE(latency)

BOOST_AUTO_TEST_CASE(percentiles_are_bucket_upper_bounds) {
    LatencyHistogram h;
    BOOST_TEST(h.summary().count == 0u);
    for (int i = 0; i < 97; ++i) h.record(microseconds(100));  // bucket [64, 128)
    h.record(microseconds(3000));                              // [2048, 4096): the 99th and 100th
    h.record(microseconds(3000));
    h.record(microseconds(0));
    auto s = h.summary();
    BOOST_TEST(s.count == 100u);
    BOOST_TEST(s.p50_us == 128u);
    BOOST_TEST(s.p99_us == 4096u);
    BOOST_TEST(s.mean_us == (97u * 100u + 6000u) / 100u);
}

BOOST_AUTO_TEST_CASE(huge_values_land_in_the_last_bucket) {
    LatencyHistogram h;
    h.record(std::chrono::hours(24 * 365 * 100));
    BOOST_TEST(h.summary().p99_us == (std::uint64_t{2} << (LatencyHistogram::kBuckets - 1)));
}

BOOST_AUTO_TEST_SUITE_END()
