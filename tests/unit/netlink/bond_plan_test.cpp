#include <boost/test/unit_test.hpp>

#include "sanagent/netlink/bond.h"

using namespace sanagent::netlink;
using K = LinkChange::Kind;

namespace {

BondSpec san0() {
    BondSpec spec;
    spec.name = "san0";
    spec.options.mode = BondMode::Lacp;
    spec.options.lacp_rate = 1;
    spec.slaves = {"eth2", "eth3"};
    spec.mtu = 9000;
    spec.alias = "iSCSI SAN";
    return spec;
}

BondState existing(const BondSpec& spec) {
    BondState b;
    b.link.name = spec.name;
    b.link.mtu = spec.mtu;
    b.link.alias = spec.alias;
    b.link.admin_up = true;
    b.options = spec.options;
    for (const auto& s : spec.slaves) b.slaves.push_back({s, 0, true, true, 1});
    return b;
}

}  // namespace

BOOST_AUTO_TEST_CASE(mode_names_are_the_kernels) {
    BOOST_TEST((bond_mode_from_name("802.3ad") == BondMode::Lacp));
    BOOST_TEST((bond_mode_from_name("balance-alb") == BondMode::BalanceAlb));
    BOOST_TEST(!bond_mode_from_name("lacp").has_value());
    BOOST_TEST(bond_mode_name(BondMode::ActiveBackup) == "active-backup");
}

BOOST_AUTO_TEST_CASE(a_new_bond_gets_ports_while_they_are_down) {
    auto changes = plan_bond(san0(), {});
    BOOST_TEST_REQUIRE(changes.size() == 10u);
    BOOST_TEST((changes[0].kind == K::CreateBond));
    BOOST_TEST((changes[1].kind == K::SetMtu));
    BOOST_TEST((changes[2].kind == K::SetAlias));
    BOOST_TEST((changes[3].kind == K::SetDown && changes[3].link == "eth2"));
    BOOST_TEST((changes[4].kind == K::SetMaster && changes[4].master == "san0"));
    BOOST_TEST((changes[5].kind == K::SetUp && changes[5].link == "eth2"));
    BOOST_TEST((changes.back().kind == K::SetUp && changes.back().link == "san0"));
}

BOOST_AUTO_TEST_CASE(an_unchanged_bond_plans_nothing) {
    auto spec = san0();
    BOOST_TEST(plan_bond(spec, {existing(spec)}).empty());
}

BOOST_AUTO_TEST_CASE(options_the_mode_does_not_have_are_not_compared) {
    auto spec = san0();
    spec.options.mode = BondMode::BalanceAlb;
    auto have = existing(spec);
    have.options.lacp_rate = 0;  // what the kernel reports outside 802.3ad
    BOOST_TEST(plan_bond(spec, {have}).empty());
}

BOOST_AUTO_TEST_CASE(a_mode_change_goes_down_and_releases_ports_first) {
    auto spec = san0();
    auto have = existing(spec);
    spec.options.mode = BondMode::ActiveBackup;
    auto changes = plan_bond(spec, {have});
    BOOST_TEST_REQUIRE(changes.size() >= 4u);
    BOOST_TEST((changes[0].kind == K::SetDown && changes[0].link == "san0"));
    BOOST_TEST((changes[1].kind == K::SetMaster && changes[1].master.empty()));
    BOOST_TEST((changes[2].kind == K::SetMaster && changes[2].master.empty()));
    BOOST_TEST((changes[3].kind == K::SetBondOptions));
    BOOST_TEST((changes.back().kind == K::SetUp && changes.back().link == "san0"));
}

BOOST_AUTO_TEST_CASE(a_port_dropped_from_the_config_is_released) {
    auto spec = san0();
    auto have = existing(spec);
    spec.slaves = {"eth2"};
    auto changes = plan_bond(spec, {have});
    BOOST_TEST_REQUIRE(changes.size() == 1u);
    BOOST_TEST((changes[0].kind == K::SetMaster && changes[0].link == "eth3" && changes[0].master.empty()));
}
