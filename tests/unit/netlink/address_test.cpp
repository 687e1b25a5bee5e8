#include <sched.h>
#include <sys/socket.h>

#include <boost/test/unit_test.hpp>

#include <algorithm>

#include "sanagent/netlink/address.h"
#include "sanagent/netlink/bond.h"

using namespace sanagent::netlink;

BOOST_AUTO_TEST_CASE(addresses_are_parsed_to_canonical_form) {
    auto v4 = parse_interface_address("10.0.10.11/24");
    BOOST_TEST_REQUIRE(v4.has_value());
    BOOST_TEST(v4->family == AF_INET);
    BOOST_TEST(v4->text() == "10.0.10.11/24");
    auto v6 = parse_interface_address("FD00:0:0::11/64");
    BOOST_TEST_REQUIRE(v6.has_value());
    BOOST_TEST(v6->text() == "fd00::11/64");
    for (const char* bad : {"10.0.10.11", "10.0.10.11/33", "fd00::1/129", "host/24", "10.0.10.11/", "1.2.3.4/2x"})
        BOOST_TEST(!parse_interface_address(bad).has_value(), bad);
}

// In a fresh network namespace (the libnl tests' habit): set an address on a
// link, read it back, remove it. Skipped where namespaces cannot be made.
BOOST_AUTO_TEST_CASE(address_set_read_back_and_removed_in_a_fresh_namespace) {
    if (::unshare(CLONE_NEWNET) != 0) {
        BOOST_TEST_MESSAGE("cannot create a network namespace here; skipped");
        return;
    }
    auto sock = NetlinkSocket::open_route();
    BOOST_TEST_REQUIRE(sock.ok());
    // lo exists in every namespace; bring it up so it takes addresses.
    LinkChange up{LinkChange::Kind::SetUp, "lo", {}, 0, {}, {}};
    BOOST_TEST_REQUIRE(apply_link_changes(*sock, {up}).ok());
    auto a = *parse_interface_address("192.0.2.7/24");
    auto added = add_address(*sock, "lo", a);
    BOOST_TEST_REQUIRE(added.ok(), (added.ok() ? "" : added.error().message));
    auto dumped = dump_addresses(*sock);
    BOOST_TEST_REQUIRE(dumped.ok());
    auto has = [&](const std::vector<AddressState>& all) {
        return std::any_of(all.begin(), all.end(), [&](const AddressState& s) { return s.address == a; });
    };
    BOOST_TEST(has(*dumped));
    auto again = add_address(*sock, "lo", a);
    BOOST_TEST_REQUIRE(!again.ok());
    BOOST_TEST(again.error().code == EEXIST);
    BOOST_TEST(again.error().message.find("adding 192.0.2.7/24 to lo") == 0u);
    BOOST_TEST_REQUIRE(delete_address(*sock, "lo", a).ok());
    BOOST_TEST(!has(*dump_addresses(*sock)));
    // A refusal carries the kernel's own words (extended ack): the kernel
    // reads IFLA_MTU as an int, so 0xffffffff is below any device's minimum.
    LinkChange bad{LinkChange::Kind::SetMtu, "lo", {}, 0, {}, {}};
    bad.mtu = 0xffffffffu;
    auto refused = apply_link_changes(*sock, {bad});
    BOOST_TEST_REQUIRE(!refused.ok());
    BOOST_TEST(refused.error().message.find("set lo mtu 4294967295: netlink: Invalid argument (kernel: mtu less than "
                                            "device minimum)") == 0u,
               refused.error().message);
}
