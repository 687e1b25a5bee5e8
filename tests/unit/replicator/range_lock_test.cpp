#include "sanagent/replicator/range_lock.h"

#include <boost/test/unit_test.hpp>
#include <vector>

using sanagent::replicator::RangeLock;

BOOST_AUTO_TEST_SUITE(range_lock)

BOOST_AUTO_TEST_CASE(overlapping_ranges_start_in_arrival_order) {
    RangeLock lock;
    std::vector<int> started;
    std::vector<RangeLock::Ticket> tickets(4);
    lock.acquire(0, 100, [&](RangeLock::Ticket t) { started.push_back(0), tickets[0] = t; });
    lock.acquire(50, 100, [&](RangeLock::Ticket t) { started.push_back(1), tickets[1] = t; });  // overlaps 0
    lock.acquire(200, 10, [&](RangeLock::Ticket t) { started.push_back(2), tickets[2] = t; });  // free
    lock.acquire(120, 10, [&](RangeLock::Ticket t) { started.push_back(3), tickets[3] = t; });  // overlaps waiting 1
    BOOST_TEST(started == (std::vector<int>{0, 2}));
    lock.release(tickets[2]);
    BOOST_TEST(started == (std::vector<int>{0, 2}));
    lock.release(tickets[0]);
    BOOST_TEST(started == (std::vector<int>{0, 2, 1}));
    lock.release(tickets[1]);
    BOOST_TEST(started == (std::vector<int>{0, 2, 1, 3}));
    lock.release(tickets[3]);
    BOOST_TEST(lock.size() == 0u);
}

BOOST_AUTO_TEST_CASE(adjacent_ranges_do_not_overlap) {
    RangeLock lock;
    int n = 0;
    lock.acquire(0, 4096, [&](RangeLock::Ticket) { ++n; });
    lock.acquire(4096, 4096, [&](RangeLock::Ticket) { ++n; });
    BOOST_TEST(n == 2);
}

BOOST_AUTO_TEST_SUITE_END()
