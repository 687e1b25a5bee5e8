// Bonds over rtnetlink. Debian 12's libnl 3.7 cannot set a single bond option,
// so the bond's IFLA_LINKINFO / IFLA_INFO_DATA (IFLA_BOND_*) is built here with
// libmnl and read back from RTM_GETLINK dumps, slaves' IFLA_BOND_SLAVE_* too.
//
// Kernel ordering rules kept here (bond_netlink.c, bond_main.c):
// - a bond's mode can only change while it is down and has no slaves;
// - a slave is enslaved while it is down (networkd does the same), then brought up;
// - the bond's MTU is propagated by the kernel to its slaves.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sanagent/netlink/link.h"

namespace sanagent::netlink {

// The kernel's numbering (BOND_MODE_* in include/net/bonding.h).
enum class BondMode : std::uint8_t {
    BalanceRr = 0,
    ActiveBackup = 1,
    BalanceXor = 2,
    Broadcast = 3,
    Lacp = 4,  // 802.3ad
    BalanceTlb = 5,
    BalanceAlb = 6,
};
std::optional<BondMode> bond_mode_from_name(const std::string& name);  // "802.3ad", "balance-alb", ...
std::string bond_mode_name(BondMode mode);

struct BondOptions {
    BondMode mode = BondMode::BalanceAlb;   // no switch support needed, spans two switches
    std::uint32_t miimon_ms = 100;
    std::uint32_t updelay_ms = 0;
    std::uint32_t downdelay_ms = 0;
    std::uint8_t lacp_rate = 0;            // 802.3ad: 0 slow (30 s), 1 fast (1 s)
    std::uint8_t xmit_hash_policy = 0;     // 0 layer2, 1 layer3+4, 2 layer2+3
    std::uint32_t min_links = 0;
    bool operator==(const BondOptions&) const = default;
};

struct BondSpec {
    std::string name;
    BondOptions options;
    std::vector<std::string> slaves;
    std::uint32_t mtu = 0;   // 0: leave as is
    std::string alias;       // IFLA_IFALIAS, the admin's description
};

struct BondSlaveState {
    std::string name;
    int index = 0;
    bool active = false;     // IFLA_BOND_SLAVE_STATE == BOND_STATE_ACTIVE
    bool mii_up = false;     // IFLA_BOND_SLAVE_MII_STATUS == BOND_LINK_UP
    std::uint16_t aggregator_id = 0;  // 802.3ad
};

struct BondState {
    LinkState link;
    BondOptions options;
    std::vector<BondSlaveState> slaves;
    std::uint16_t active_aggregator = 0;   // IFLA_BOND_AD_INFO_AGGREGATOR
    std::uint16_t aggregator_ports = 0;    // IFLA_BOND_AD_INFO_NUM_PORTS
    std::string partner_mac;               // IFLA_BOND_AD_INFO_PARTNER_MAC
};

// All bonds of the namespace, with their slaves.
Result<std::vector<BondState>> dump_bonds(NetlinkSocket& socket);

// One netlink change, as data: what `sanctl plan` prints and apply runs.
struct LinkChange {
    enum class Kind { CreateBond, SetBondOptions, SetDown, SetUp, SetMaster, SetMtu, SetAlias };
    Kind kind;
    std::string link;        // the interface the change is for
    std::string master;      // SetMaster
    std::uint32_t mtu = 0;   // SetMtu
    std::string alias;       // SetAlias
    BondOptions options;     // CreateBond, SetBondOptions
    std::string describe() const;
};

// Changes that take the namespace's bonds from `bonds` (a dump_bonds()) to
// `spec`, in a safe order. Empty when nothing differs.
std::vector<LinkChange> plan_bond(const BondSpec& spec, const std::vector<BondState>& bonds);

// Deletes a link (a bond sanagent made and must take back).
Status delete_link(NetlinkSocket& socket, const std::string& name);

// Runs changes in order; stops at the first failure with the kernel's message.
Status apply_link_changes(NetlinkSocket& socket, const std::vector<LinkChange>& changes);

}  // namespace sanagent::netlink
