#define BOOST_TEST_MODULE netlink
#include <boost/test/unit_test.hpp>

#include <algorithm>

#include "sanagent/netlink/link.h"

using namespace sanagent::netlink;

// Every network namespace has a loopback link; the dump must find it.
BOOST_AUTO_TEST_CASE(dump_finds_loopback) {
    auto sock = NetlinkSocket::open_route();
    BOOST_TEST_REQUIRE(sock.ok(), (sock.ok() ? "" : sock.error().message));
    auto links = dump_links(*sock);
    BOOST_TEST_REQUIRE(links.ok());
    auto lo = std::find_if(links->begin(), links->end(), [](const LinkState& l) { return l.name == "lo"; });
    BOOST_TEST_REQUIRE((lo != links->end()));
    BOOST_TEST(lo->index == 1);
    BOOST_TEST(lo->mtu > 0u);
}

BOOST_AUTO_TEST_CASE(the_socket_can_be_reused_for_several_dumps) {
    auto sock = NetlinkSocket::open_route();
    BOOST_TEST_REQUIRE(sock.ok());
    auto first = dump_links(*sock);
    auto second = dump_links(*sock);
    BOOST_TEST_REQUIRE(first.ok());
    BOOST_TEST_REQUIRE(second.ok());
    BOOST_TEST(first->size() == second->size());
}

BOOST_AUTO_TEST_CASE(oper_state_names_match_ip_link) {
    BOOST_TEST(oper_state_name(6) == "up");
    BOOST_TEST(oper_state_name(2) == "down");
    BOOST_TEST(oper_state_name(200) == "unknown");
}
