// bond_apply: drives the netlink library's bond planner in the current network
// namespace, so lab cases prove it on the real bonding driver before the
// agent's [bond] module composes the same calls. Not installed; test use only.
//
//   bond_apply plan|apply NAME MODE SLAVE[,SLAVE...] [mtu=N] [alias=TEXT] [lacp_rate=fast]
//   bond_apply show NAME       the bond as netlink reports it (mode, slaves, aggregator)
#include <iostream>
#include <sstream>

#include "sanagent/netlink/bond.h"

using namespace sanagent::netlink;

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    auto sock = NetlinkSocket::open_route();
    if (!sock) {
        std::cerr << "bond_apply: " << sock.error().message << "\n";
        return 1;
    }
    auto bonds = dump_bonds(*sock);
    if (!bonds) {
        std::cerr << "bond_apply: " << bonds.error().message << "\n";
        return 1;
    }
    if (args.size() == 2 && args[0] == "show") {
        for (const auto& b : *bonds) {
            if (b.link.name != args[1]) continue;
            std::cout << "bond " << b.link.name << " mode " << bond_mode_name(b.options.mode) << " miimon "
                      << b.options.miimon_ms << " lacp_rate " << int(b.options.lacp_rate) << " mtu " << b.link.mtu
                      << " alias \"" << b.link.alias << "\" up " << b.link.admin_up << " aggregator "
                      << b.active_aggregator << " ports " << b.aggregator_ports << " partner " << b.partner_mac
                      << "\n";
            for (const auto& s : b.slaves)
                std::cout << "slave " << s.name << " mii " << (s.mii_up ? "up" : "down") << " aggregator "
                          << s.aggregator_id << "\n";
            return 0;
        }
        std::cerr << "bond_apply: no bond " << args[1] << "\n";
        return 1;
    }
    if (args.size() < 4 || (args[0] != "plan" && args[0] != "apply")) {
        std::cerr << "usage: bond_apply plan|apply NAME MODE SLAVES [mtu=N] [alias=TEXT] [lacp_rate=fast]\n"
                     "       bond_apply show NAME\n";
        return 2;
    }
    BondSpec spec;
    spec.name = args[1];
    auto mode = bond_mode_from_name(args[2]);
    if (!mode) {
        std::cerr << "bond_apply: unknown mode " << args[2] << "\n";
        return 2;
    }
    spec.options.mode = *mode;
    std::stringstream slaves(args[3]);
    for (std::string s; std::getline(slaves, s, ',');) spec.slaves.push_back(s);
    for (std::size_t i = 4; i < args.size(); ++i) {
        if (args[i].rfind("mtu=", 0) == 0) spec.mtu = static_cast<std::uint32_t>(std::stoul(args[i].substr(4)));
        if (args[i].rfind("alias=", 0) == 0) spec.alias = args[i].substr(6);
        if (args[i] == "lacp_rate=fast") spec.options.lacp_rate = 1;
    }
    auto changes = plan_bond(spec, *bonds);
    for (const auto& c : changes) std::cout << c.describe() << "\n";
    std::cout << "changes: " << changes.size() << "\n";
    if (args[0] == "apply") {
        auto st = apply_link_changes(*sock, changes);
        if (!st) {
            std::cerr << "bond_apply: " << st.error().message << "\n";
            return 1;
        }
    }
    return 0;
}
