#include "sanagent/replicator/range_lock.h"

#include <boost/test/unit_test.hpp>
#include <map>
#include <random>
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

// Against the rule itself, over random arrivals and releases: after every
// step, an entry has started exactly when nothing before it in arrival order
// overlaps it (what blocks a waiter is only ever removed by a release).
BOOST_AUTO_TEST_CASE(random_arrivals_and_releases_follow_the_rule) {
    struct Model {
        int id;
        std::uint64_t begin, end;
    };
    std::mt19937 rng(20261205);
    RangeLock lock;
    std::vector<Model> live;  // arrival order
    std::map<int, RangeLock::Ticket> started;
    int next_id = 0;
    for (int step = 0; step < 20000; ++step) {
        if (live.size() < 40 && (started.empty() || rng() % 2)) {
            int id = next_id++;
            std::uint64_t begin = rng() % 64, length = 1 + rng() % 6;
            live.push_back({id, begin, begin + length});
            lock.acquire(begin, length, [&started, id](RangeLock::Ticket t) {
                BOOST_TEST_REQUIRE(started.count(id) == 0u);
                started[id] = t;
            });
        } else {
            auto it = started.begin();
            std::advance(it, static_cast<long>(rng() % started.size()));
            int id = it->first;
            RangeLock::Ticket t = it->second;
            started.erase(it);
            std::erase_if(live, [id](const Model& m) { return m.id == id; });
            lock.release(t);
        }
        for (std::size_t i = 0; i < live.size(); ++i) {
            bool blocked = false;
            for (std::size_t j = 0; j < i; ++j)
                blocked = blocked || (live[j].begin < live[i].end && live[i].begin < live[j].end);
            BOOST_TEST_REQUIRE(started.count(live[i].id) == (blocked ? 0u : 1u), "step " << step << " entry " << i);
        }
    }
    BOOST_TEST(lock.size() == live.size());
}

BOOST_AUTO_TEST_SUITE_END()
