#include "sanagent/netlink/bond.h"

// glibc's net/if.h must come before the kernel's headers (libc-compat.h).
#include <net/if.h>
//
#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <map>

#include "sanagent/netlink/attributes.h"

namespace sanagent::netlink {

namespace {

constexpr std::array<std::pair<const char*, BondMode>, 7> kModeNames{{
    {"balance-rr", BondMode::BalanceRr},
    {"active-backup", BondMode::ActiveBackup},
    {"balance-xor", BondMode::BalanceXor},
    {"broadcast", BondMode::Broadcast},
    {"802.3ad", BondMode::Lacp},
    {"balance-tlb", BondMode::BalanceTlb},
    {"balance-alb", BondMode::BalanceAlb},
}};

// Options the kernel refuses outside some modes ("mode dependency failed"):
// only send, and only compare, what the mode supports.
bool mode_has_lacp_rate(BondMode m) { return m == BondMode::Lacp; }
bool mode_has_xmit_hash(BondMode m) { return m == BondMode::Lacp || m == BondMode::BalanceXor; }

BondOptions normalized(BondOptions o) {
    if (!mode_has_lacp_rate(o.mode)) o.lacp_rate = 0;
    if (!mode_has_xmit_hash(o.mode)) o.xmit_hash_policy = 0;
    return o;
}

std::string mac_text(const nlattr* attr) {
    std::string mac;
    const auto* b = static_cast<const unsigned char*>(mnl_attr_get_payload(attr));
    for (unsigned i = 0; i < mnl_attr_get_payload_len(attr); ++i) {
        char part[4];
        std::snprintf(part, sizeof part, i ? ":%02x" : "%02x", b[i]);
        mac += part;
    }
    return mac;
}

struct RawBondInfo {
    bool is_bond = false;
    bool is_bond_slave = false;
    BondOptions options;
    std::uint16_t aggregator = 0, ports = 0;
    std::string partner_mac;
    BondSlaveState slave;
};

void parse_bond_data(const nlattr* data, RawBondInfo& info) {
    for (const nlattr* a : nested(data)) {
        switch (mnl_attr_get_type(a)) {
        case IFLA_BOND_MODE: info.options.mode = static_cast<BondMode>(mnl_attr_get_u8(a)); break;
        case IFLA_BOND_MIIMON: info.options.miimon_ms = mnl_attr_get_u32(a); break;
        case IFLA_BOND_UPDELAY: info.options.updelay_ms = mnl_attr_get_u32(a); break;
        case IFLA_BOND_DOWNDELAY: info.options.downdelay_ms = mnl_attr_get_u32(a); break;
        case IFLA_BOND_AD_LACP_RATE: info.options.lacp_rate = mnl_attr_get_u8(a); break;
        case IFLA_BOND_XMIT_HASH_POLICY: info.options.xmit_hash_policy = mnl_attr_get_u8(a); break;
        case IFLA_BOND_MIN_LINKS: info.options.min_links = mnl_attr_get_u32(a); break;
        case IFLA_BOND_AD_INFO:
            for (const nlattr* ad : nested(a)) {
                switch (mnl_attr_get_type(ad)) {
                case IFLA_BOND_AD_INFO_AGGREGATOR: info.aggregator = mnl_attr_get_u16(ad); break;
                case IFLA_BOND_AD_INFO_NUM_PORTS: info.ports = mnl_attr_get_u16(ad); break;
                case IFLA_BOND_AD_INFO_PARTNER_MAC: info.partner_mac = mac_text(ad); break;
                default: break;
                }
            }
            break;
        default: break;
        }
    }
}

void parse_slave_data(const nlattr* data, BondSlaveState& slave) {
    for (const nlattr* a : nested(data)) {
        switch (mnl_attr_get_type(a)) {
        case IFLA_BOND_SLAVE_STATE: slave.active = mnl_attr_get_u8(a) == 0; break;     // BOND_STATE_ACTIVE
        case IFLA_BOND_SLAVE_MII_STATUS: slave.mii_up = mnl_attr_get_u8(a) == 0; break;  // BOND_LINK_UP
        case IFLA_BOND_SLAVE_AD_AGGREGATOR_ID: slave.aggregator_id = mnl_attr_get_u16(a); break;
        default: break;
        }
    }
}

RawBondInfo parse_linkinfo(const nlmsghdr& nlh) {
    RawBondInfo info;
    for (const nlattr* attr : attributes(nlh, sizeof(ifinfomsg))) {
        if (mnl_attr_get_type(attr) != IFLA_LINKINFO) continue;
        std::string kind, slave_kind;
        const nlattr* data = nullptr;
        const nlattr* slave_data = nullptr;
        for (const nlattr* li : nested(attr)) {
            switch (mnl_attr_get_type(li)) {
            case IFLA_INFO_KIND: kind = mnl_attr_get_str(li); break;
            case IFLA_INFO_SLAVE_KIND: slave_kind = mnl_attr_get_str(li); break;
            case IFLA_INFO_DATA: data = li; break;
            case IFLA_INFO_SLAVE_DATA: slave_data = li; break;
            default: break;
            }
        }
        if (kind == "bond") {
            info.is_bond = true;
            if (data) parse_bond_data(data, info);
        }
        if (slave_kind == "bond") {
            info.is_bond_slave = true;
            if (slave_data) parse_slave_data(slave_data, info.slave);
        }
    }
    return info;
}

}  // namespace

std::optional<BondMode> bond_mode_from_name(const std::string& name) {
    for (const auto& [n, m] : kModeNames)
        if (name == n) return m;
    return std::nullopt;
}

std::string bond_mode_name(BondMode mode) {
    for (const auto& [n, m] : kModeNames)
        if (m == mode) return n;
    return "unknown";
}

Result<std::vector<BondState>> dump_bonds(NetlinkSocket& socket) {
    alignas(nlmsghdr) std::array<char, 512> buf{};
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
    nlh->nlmsg_type = RTM_GETLINK;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
    ifm->ifi_family = AF_UNSPEC;

    std::vector<std::pair<LinkState, RawBondInfo>> all;
    auto st = socket.transact(*nlh, "dumping bonds", [&](const nlmsghdr& m) {
        // The plain link fields come from the same parser as dump_links().
        if (m.nlmsg_type != RTM_NEWLINK) return;
        if (auto link = parse_link_message(m)) all.emplace_back(std::move(*link), parse_linkinfo(m));
    });
    if (!st) return st.error();

    std::vector<BondState> bonds;
    for (const auto& [link, info] : all) {
        if (!info.is_bond) continue;
        BondState b;
        b.link = link;
        b.options = info.options;
        b.active_aggregator = info.aggregator;
        b.aggregator_ports = info.ports;
        b.partner_mac = info.partner_mac;
        for (const auto& [slave_link, slave_info] : all) {
            if (slave_link.master_index != link.index || !slave_info.is_bond_slave) continue;
            BondSlaveState s = slave_info.slave;
            s.name = slave_link.name;
            s.index = slave_link.index;
            b.slaves.push_back(s);
        }
        bonds.push_back(std::move(b));
    }
    return bonds;
}

std::string LinkChange::describe() const {
    switch (kind) {
    case Kind::CreateBond: {
        std::string s = "create bond " + link + " mode " + bond_mode_name(options.mode) + " miimon " +
                        std::to_string(options.miimon_ms) + "ms";
        if (mode_has_lacp_rate(options.mode)) s += std::string(" lacp_rate ") + (options.lacp_rate ? "fast" : "slow");
        return s;
    }
    case Kind::SetBondOptions: return "set bond " + link + " options (mode " + bond_mode_name(options.mode) + ")";
    case Kind::SetDown: return "set " + link + " down";
    case Kind::SetUp: return "set " + link + " up";
    case Kind::SetMaster: return master.empty() ? "release " + link + " from its bond" : "enslave " + link + " to " + master;
    case Kind::SetMtu: return "set " + link + " mtu " + std::to_string(mtu);
    case Kind::SetAlias: return "set " + link + " alias \"" + alias + "\"";
    }
    return {};
}

std::vector<LinkChange> plan_bond(const BondSpec& spec, const std::vector<BondState>& bonds) {
    using K = LinkChange::Kind;
    std::vector<LinkChange> out;
    auto change = [&](K kind, const std::string& link) {
        LinkChange c{kind, link, {}, 0, {}, {}};
        return c;
    };
    const BondState* have = nullptr;
    for (const auto& b : bonds)
        if (b.link.name == spec.name) have = &b;
    const BondOptions want = normalized(spec.options);

    std::vector<std::string> enslaved;
    if (!have) {
        auto c = change(K::CreateBond, spec.name);
        c.options = want;
        out.push_back(c);
    } else {
        for (const auto& s : have->slaves) enslaved.push_back(s.name);
        if (have->options.mode != want.mode) {
            // The kernel only changes a bond's mode while it is down with no slaves.
            out.push_back(change(K::SetDown, spec.name));
            for (const auto& s : enslaved) out.push_back(change(K::SetMaster, s));
            enslaved.clear();
            auto c = change(K::SetBondOptions, spec.name);
            c.options = want;
            out.push_back(c);
        } else if (normalized(have->options) != want) {
            auto c = change(K::SetBondOptions, spec.name);
            c.options = want;
            out.push_back(c);
        }
        for (const auto& s : std::vector<std::string>(enslaved)) {
            if (std::find(spec.slaves.begin(), spec.slaves.end(), s) == spec.slaves.end()) {
                out.push_back(change(K::SetMaster, s));  // release a port no longer listed
                enslaved.erase(std::find(enslaved.begin(), enslaved.end(), s));
            }
        }
    }
    if (spec.mtu && (!have || have->link.mtu != spec.mtu)) {
        auto c = change(K::SetMtu, spec.name);
        c.mtu = spec.mtu;
        out.push_back(c);
    }
    if (!spec.alias.empty() && (!have || have->link.alias != spec.alias)) {
        auto c = change(K::SetAlias, spec.name);
        c.alias = spec.alias;
        out.push_back(c);
    }
    for (const auto& s : spec.slaves) {
        if (std::find(enslaved.begin(), enslaved.end(), s) != enslaved.end()) continue;
        // Ports join while down, then come up under the bond.
        out.push_back(change(K::SetDown, s));
        auto c = change(K::SetMaster, s);
        c.master = spec.name;
        out.push_back(c);
        out.push_back(change(K::SetUp, s));
    }
    if (!have || !have->link.admin_up || have->options.mode != want.mode) out.push_back(change(K::SetUp, spec.name));
    return out;
}

namespace {

void put_bond_options(nlmsghdr* nlh, const BondOptions& o, bool include_mode) {
    nlattr* info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
    mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "bond");
    nlattr* data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
    if (include_mode) mnl_attr_put_u8(nlh, IFLA_BOND_MODE, static_cast<std::uint8_t>(o.mode));
    mnl_attr_put_u32(nlh, IFLA_BOND_MIIMON, o.miimon_ms);
    mnl_attr_put_u32(nlh, IFLA_BOND_UPDELAY, o.updelay_ms);
    mnl_attr_put_u32(nlh, IFLA_BOND_DOWNDELAY, o.downdelay_ms);
    mnl_attr_put_u32(nlh, IFLA_BOND_MIN_LINKS, o.min_links);
    if (mode_has_lacp_rate(o.mode)) mnl_attr_put_u8(nlh, IFLA_BOND_AD_LACP_RATE, o.lacp_rate);
    if (mode_has_xmit_hash(o.mode)) mnl_attr_put_u8(nlh, IFLA_BOND_XMIT_HASH_POLICY, o.xmit_hash_policy);
    mnl_attr_nest_end(nlh, data);
    mnl_attr_nest_end(nlh, info);
}

}  // namespace

Status delete_link(NetlinkSocket& socket, const std::string& name) {
    alignas(nlmsghdr) std::array<char, 256> buf{};
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
    nlh->nlmsg_type = RTM_DELLINK;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
    ifm->ifi_family = AF_UNSPEC;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
    return socket.transact(*nlh, "deleting " + name, [](const nlmsghdr&) {});
}

namespace {

Status apply_one(NetlinkSocket& socket, const LinkChange& c);

}  // namespace

Status apply_link_changes(NetlinkSocket& socket, const std::vector<LinkChange>& changes) {
    std::vector<std::string> created;
    for (const auto& c : changes) {
        auto st = apply_one(socket, c);
        if (!st) {
            // A bond this run created goes again (its ports are released with
            // it), so a failed apply leaves no half-made bond behind.
            for (const auto& name : created) (void)delete_link(socket, name);
            return st;
        }
        if (c.kind == LinkChange::Kind::CreateBond) created.push_back(c.link);
    }
    return {};
}

namespace {

Status apply_one(NetlinkSocket& socket, const LinkChange& c) {
    using K = LinkChange::Kind;
    {
        alignas(nlmsghdr) std::array<char, 1024> buf{};
        nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
        nlh->nlmsg_type = RTM_NEWLINK;
        nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
        auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
        ifm->ifi_family = AF_UNSPEC;
        if (c.kind == K::CreateBond) {
            nlh->nlmsg_flags |= NLM_F_CREATE | NLM_F_EXCL;
            mnl_attr_put_strz(nlh, IFLA_IFNAME, c.link.c_str());
            put_bond_options(nlh, c.options, true);
        } else {
            int index = static_cast<int>(::if_nametoindex(c.link.c_str()));
            if (!index) return errno_error(ENODEV, c.describe() + ": no interface " + c.link);
            ifm->ifi_index = index;
            switch (c.kind) {
            case K::SetBondOptions: put_bond_options(nlh, c.options, true); break;
            case K::SetDown: ifm->ifi_change = IFF_UP; ifm->ifi_flags = 0; break;
            case K::SetUp: ifm->ifi_change = IFF_UP; ifm->ifi_flags = IFF_UP; break;
            case K::SetMaster: {
                unsigned master = 0;
                if (!c.master.empty() && !(master = ::if_nametoindex(c.master.c_str())))
                    return errno_error(ENODEV, c.describe() + ": no interface " + c.master);
                mnl_attr_put_u32(nlh, IFLA_MASTER, master);
                break;
            }
            case K::SetMtu: mnl_attr_put_u32(nlh, IFLA_MTU, c.mtu); break;
            case K::SetAlias: mnl_attr_put_strz(nlh, IFLA_IFALIAS, c.alias.c_str()); break;
            case K::CreateBond: break;
            }
        }
        return socket.transact(*nlh, c.describe(), [](const nlmsghdr&) {});
    }
}

}  // namespace

}  // namespace sanagent::netlink
