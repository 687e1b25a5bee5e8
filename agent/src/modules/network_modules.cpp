#include "sanagent/agent/network_modules.h"

#include <algorithm>
#include <set>

#include "sanagent/configfs/lio.h"

namespace sanagent::agent {

namespace fs = std::filesystem;
using netlink::LinkChange;

Result<netlink::NetlinkSocket*> NetlinkSession::socket() {
    if (!socket_) {
        auto s = netlink::NetlinkSocket::open_route();
        if (!s) return s.error();
        socket_.emplace(std::move(*s));
    }
    return &*socket_;
}

Result<NetworkView> NetlinkSession::read() {
    auto sock = socket();
    if (!sock) return sock.error();
    NetworkView view;
    auto links = netlink::dump_links(**sock);
    if (!links) return links.error();
    auto bonds = netlink::dump_bonds(**sock);
    if (!bonds) return bonds.error();
    auto addresses = netlink::dump_addresses(**sock);
    if (!addresses) return addresses.error();
    return NetworkView{std::move(*links), std::move(*bonds), std::move(*addresses)};
}

namespace {

constexpr std::size_t kMaxInterfaceName = 15;  // IFNAMSIZ - 1

const netlink::LinkState* find_link(const NetworkView& v, const std::string& name) {
    for (const auto& l : v.links)
        if (l.name == name) return &l;
    return nullptr;
}

const netlink::BondState* find_bond(const NetworkView& v, const std::string& name) {
    for (const auto& b : v.bonds)
        if (b.link.name == name) return &b;
    return nullptr;
}

std::vector<netlink::InterfaceAddress> addresses_of(const NetworkView& v, int index) {
    std::vector<netlink::InterfaceAddress> out;
    for (const auto& a : v.addresses)
        if (a.index == index && !a.link_local) out.push_back(a.address);
    return out;
}

std::vector<netlink::InterfaceAddress> wanted_addresses(const Config& config, const std::string& section,
                                                        const std::string& name) {
    std::vector<netlink::InterfaceAddress> out;
    for (const auto& text : config.get_list(section, name, "addresses"))
        if (auto a = netlink::parse_interface_address(text)) out.push_back(*a);
    return out;
}

void validate_interface(const Config& config, const std::string& section, Diagnostics& diagnostics) {
    for (const auto* object : config.objects(section)) {
        if (object->name.size() > kMaxInterfaceName)
            diagnostics.error(object->origin, object->id(), {},
                              "interface names have at most 15 characters (the kernel's IFNAMSIZ)");
        if (const auto* addresses = config.value(section, object->name, "addresses"))
            for (const auto& text : std::get<std::vector<std::string>>(addresses->data))
                if (!netlink::parse_interface_address(text))
                    diagnostics.error(addresses->origin, object->id(), "addresses",
                                      "expected an address with its prefix length (10.0.10.11/24, fd00::11/64), "
                                      "got \"" + text.substr(0, 64) + "\"");
    }
}

// A failing step: the object is reported failed with the reason, nothing of it runs.
Step refusal(const std::string& object, const std::string& action, Error error) {
    return Step{object, action + ": refused: " + error.message, [e = std::move(error)]() -> Status { return e; }, {},
                false, {}};
}

Step change_step(const std::string& object, const LinkChange& change, std::shared_ptr<NetlinkSession> session,
                 bool claims) {
    Step step{object, change.describe(), {}, {}, claims, {}};
    step.apply = [session, change]() -> Status {
        auto sock = session->socket();
        if (!sock) return sock.error();
        return netlink::apply_link_changes(**sock, {change});
    };
    if (change.kind == LinkChange::Kind::CreateBond)
        step.undo = [session, name = change.link]() -> Status {
            auto sock = session->socket();
            if (!sock) return sock.error();
            return netlink::delete_link(**sock, name);
        };
    return step;
}

void address_steps(const std::string& object, const std::string& interface,
                   const std::vector<netlink::InterfaceAddress>& want,
                   const std::vector<netlink::InterfaceAddress>& have, std::shared_ptr<NetlinkSession> session,
                   std::vector<Step>& steps) {
    for (const auto& a : have) {
        if (std::find(want.begin(), want.end(), a) != want.end()) continue;
        Step s{object, "remove address " + a.text() + " from " + interface, {}, {}, false, {}};
        s.apply = [session, interface, a]() -> Status {
            auto sock = session->socket();
            if (!sock) return sock.error();
            return netlink::delete_address(**sock, interface, a);
        };
        steps.push_back(std::move(s));
    }
    for (const auto& a : want) {
        if (std::find(have.begin(), have.end(), a) != have.end()) continue;
        Step s{object, "add address " + a.text() + " to " + interface, {}, {}, false, {}};
        s.apply = [session, interface, a]() -> Status {
            auto sock = session->socket();
            if (!sock) return sock.error();
            return netlink::add_address(**sock, interface, a);
        };
        s.undo = [session, interface, a]() -> Status {
            auto sock = session->socket();
            if (!sock) return sock.error();
            return netlink::delete_address(**sock, interface, a);
        };
        steps.push_back(std::move(s));
    }
}

netlink::BondSpec bond_spec(const Config& config, const std::string& name) {
    netlink::BondSpec spec;
    spec.name = name;
    spec.options.mode = *netlink::bond_mode_from_name(config.get_string("bond", name, "mode"));
    spec.options.miimon_ms = static_cast<std::uint32_t>(config.get_duration("bond", name, "miimon").count());
    spec.options.updelay_ms = static_cast<std::uint32_t>(config.get_duration("bond", name, "updelay").count());
    spec.options.downdelay_ms = static_cast<std::uint32_t>(config.get_duration("bond", name, "downdelay").count());
    spec.options.lacp_rate = config.get_string("bond", name, "lacp_rate") == "fast" ? 1 : 0;
    const auto hash = config.get_string("bond", name, "xmit_hash_policy");
    spec.options.xmit_hash_policy = hash == "layer3+4" ? 1 : hash == "layer2+3" ? 2 : 0;
    spec.options.min_links = static_cast<std::uint32_t>(config.get_integer("bond", name, "min_links"));
    spec.slaves = config.get_list("bond", name, "slaves");
    spec.mtu = static_cast<std::uint32_t>(config.get_integer("bond", name, "mtu"));
    spec.alias = config.get_string("bond", name, "description");
    return spec;
}

// Addresses that LIO portals listen on ("10.0.10.11:3260" -> "10.0.10.11").
std::set<std::string> portal_addresses(const fs::path& target_root) {
    std::set<std::string> out;
    auto lio = configfs::observe_lio(configfs::ConfigfsTree(target_root));
    for (const auto& t : lio.iscsi_targets)
        for (const auto& tpg : t.tpgs)
            for (const auto& p : tpg.portals) {
                auto host = p.substr(0, p.rfind(':'));
                if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
                out.insert(host);
            }
    return out;
}

}  // namespace

// ---- bond -------------------------------------------------------------------

void BondModule::validate(const Config& config, Diagnostics& diagnostics) const {
    validate_interface(config, "bond", diagnostics);
    std::map<std::string, std::string> port_owner;
    for (const auto* bond : config.objects("bond")) {
        const auto* slaves = config.value("bond", bond->name, "slaves");
        for (const auto& port : config.get_list("bond", bond->name, "slaves")) {
            Origin where = slaves ? slaves->origin : bond->origin;
            if (port.size() > kMaxInterfaceName || port.empty() || port.find('/') != std::string::npos)
                diagnostics.error(where, bond->id(), "slaves", "expected interface names, got \"" +
                                                                   port.substr(0, 32) + "\"");
            if (config.find("bond", port))
                diagnostics.error(where, bond->id(), "slaves", "\"" + port + "\" is itself a bond");
            auto [it, fresh] = port_owner.emplace(port, bond->name);
            if (!fresh && it->second != bond->name)
                diagnostics.error(where, bond->id(), "slaves",
                                  "\"" + port + "\" is already a port of [bond." + it->second + "]");
        }
        if (config.get_string("bond", bond->name, "mode") == "802.3ad" &&
            config.get_list("bond", bond->name, "slaves").size() < 2 && slaves)
            diagnostics.error(slaves->origin, bond->id(), "slaves",
                              "802.3ad needs at least two ports to be worth it (and both on one switch or an MLAG "
                              "pair)");
    }
}

Status BondModule::observe() {
    auto view = session_->read();
    if (!view) return view.error();
    view_ = std::move(*view);
    return {};
}

std::vector<std::string> BondModule::desired_objects(const Config& config) const {
    std::vector<std::string> out;
    for (const auto* b : config.objects("bond")) out.push_back("bond/" + b->name);
    return out;
}

std::vector<Step> BondModule::plan(const Config& config, const Ownership& owned) {
    std::vector<Step> steps;
    std::set<std::string> portals;
    bool portals_read = false;
    for (const auto* object : config.objects("bond")) {
        const std::string name = object->name;
        const std::string id = "bond/" + name;
        auto spec = bond_spec(config, name);
        const auto* link = find_link(view_, name);
        const auto* bond = find_bond(view_, name);
        if (link && !bond) {
            steps.push_back(refusal(id, "check " + name, Error{EEXIST, name + " exists and is not a bond"}));
            continue;
        }
        if (bond && !owned.owns(id)) continue;  // foreign: status says so
        std::string refused;
        for (const auto& port : spec.slaves) {
            const auto* p = find_link(view_, port);
            if (!p) {
                refused = "no interface " + port;
                break;
            }
            if (p->master_index && (!bond || p->master_index != bond->link.index)) {
                refused = port + " is already a port of another bond or bridge";
                break;
            }
            auto own = addresses_of(view_, p->index);
            if (!own.empty() && (!bond || p->master_index != bond->link.index)) {
                refused = port + " carries " + own[0].text() +
                          " (the management address?); move it off the port before it joins " + name;
                break;
            }
        }
        if (!refused.empty()) {
            steps.push_back(refusal(id, "check the ports of " + name, Error{EINVAL, refused}));
            continue;
        }
        auto changes = netlink::plan_bond(spec, view_.bonds);
        const bool rebuild = bond && bond->options.mode != spec.options.mode;
        if (rebuild) {
            if (!portals_read) {
                portals = portal_addresses(target_root_);
                portals_read = true;
            }
            for (const auto& a : addresses_of(view_, bond->link.index))
                if (portals.count(a.address)) {
                    refused = "changing the mode rebuilds " + name + " (down, ports released) while iSCSI portal " +
                              a.address + " listens on it; remove the portal or move it first";
                    break;
                }
            if (!refused.empty()) {
                steps.push_back(refusal(id, "rebuild " + name, Error{EBUSY, refused}));
                continue;
            }
        }
        for (const auto& c : changes) steps.push_back(change_step(id, c, session_, c.kind == LinkChange::Kind::CreateBond));
        address_steps(id, name, wanted_addresses(config, "bond", name),
                      bond ? addresses_of(view_, bond->link.index) : std::vector<netlink::InterfaceAddress>{}, session_,
                      steps);
    }
    return steps;
}

std::vector<ObjectStatus> BondModule::status(const Config& config, const Ownership& owned) {
    std::vector<ObjectStatus> out;
    for (const auto* object : config.objects("bond")) {
        const std::string name = object->name;
        auto spec = bond_spec(config, name);
        ObjectStatus s{"bond/" + name, netlink::bond_mode_name(spec.options.mode) + " over " +
                                           std::to_string(spec.slaves.size()) + " port(s)",
                       "absent", Health::degraded, "not created yet"};
        const auto* bond = find_bond(view_, name);
        if (bond) {
            s.actual = netlink::bond_mode_name(bond->options.mode) + ", mtu " + std::to_string(bond->link.mtu);
            std::vector<std::string> down;
            for (const auto& port : bond->slaves)
                if (!port.mii_up) down.push_back(port.name);
            s.actual += ", ports up " + std::to_string(bond->slaves.size() - down.size()) + "/" +
                        std::to_string(bond->slaves.size());
            if (bond->options.mode == netlink::BondMode::Lacp)
                s.actual += ", aggregator " + std::to_string(bond->active_aggregator) + " with " +
                            std::to_string(bond->aggregator_ports) + " port(s), partner " +
                            (bond->partner_mac.empty() ? "none" : bond->partner_mac);
            s.health = Health::ok;
            s.detail.clear();
            if (!owned.owns(s.object)) {
                s.health = Health::foreign;
                s.detail = "a bond of this name exists that sanagent did not make; not touched";
            } else if (bond->slaves.empty() || down.size() == bond->slaves.size()) {
                s.health = Health::failed;
                s.detail = "no working port";
            } else if (!down.empty()) {
                s.health = Health::degraded;
                s.detail = "port " + down[0] + " lost its link";
                for (std::size_t i = 1; i < down.size(); ++i) s.detail += ", port " + down[i];
            } else if (bond->slaves.size() < spec.slaves.size()) {
                s.health = Health::degraded;
                s.detail = "ports missing from the bond";
            } else if (bond->options.mode == netlink::BondMode::Lacp &&
                       (bond->aggregator_ports < bond->slaves.size() || bond->partner_mac.empty() ||
                        bond->partner_mac == "00:00:00:00:00:00")) {
                s.health = Health::degraded;
                s.detail = "LACP: not every port is in the active aggregator (check the switch's LACP config)";
            }
        }
        out.push_back(std::move(s));
    }
    return out;
}

// ---- link -------------------------------------------------------------------

void LinkModule::validate(const Config& config, Diagnostics& diagnostics) const {
    validate_interface(config, "link", diagnostics);
}

Status LinkModule::observe() {
    auto view = session_->read();
    if (!view) return view.error();
    view_ = std::move(*view);
    return {};
}

std::vector<std::string> LinkModule::desired_objects(const Config& config) const {
    std::vector<std::string> out;
    for (const auto* l : config.objects("link")) out.push_back("link/" + l->name);
    return out;
}

std::vector<Step> LinkModule::plan(const Config& config, const Ownership&) {
    std::vector<Step> steps;
    for (const auto* object : config.objects("link")) {
        const std::string name = object->name;
        const std::string id = "link/" + name;
        const auto* link = find_link(view_, name);
        if (!link) {
            steps.push_back(refusal(id, "check " + name, Error{ENODEV, "no interface " + name}));
            continue;
        }
        // Naming a link in the config is what adopts it: its MTU, alias and
        // addresses are then the config's.
        const auto mtu = static_cast<std::uint32_t>(config.get_integer("link", name, "mtu"));
        const auto alias = config.get_string("link", name, "description");
        if (link->mtu != mtu) {
            LinkChange c{LinkChange::Kind::SetMtu, name, {}, mtu, {}, {}};
            steps.push_back(change_step(id, c, session_, true));
        }
        if (!alias.empty() && link->alias != alias) {
            LinkChange c{LinkChange::Kind::SetAlias, name, {}, 0, alias, {}};
            steps.push_back(change_step(id, c, session_, true));
        }
        if (!link->admin_up) {
            LinkChange c{LinkChange::Kind::SetUp, name, {}, 0, {}, {}};
            steps.push_back(change_step(id, c, session_, true));
        }
        address_steps(id, name, wanted_addresses(config, "link", name), addresses_of(view_, link->index), session_,
                      steps);
    }
    return steps;
}

std::vector<ObjectStatus> LinkModule::status(const Config& config, const Ownership&) {
    std::vector<ObjectStatus> out;
    for (const auto* object : config.objects("link")) {
        const std::string name = object->name;
        ObjectStatus s{"link/" + name, "mtu " + std::to_string(config.get_integer("link", name, "mtu")), "absent",
                       Health::failed, "no such interface"};
        if (const auto* link = find_link(view_, name)) {
            s.actual = link->oper_state + ", mtu " + std::to_string(link->mtu);
            s.health = link->oper_state == "up" ? Health::ok : Health::degraded;
            s.detail = s.health == Health::ok ? "" : "link is " + link->oper_state;
        }
        out.push_back(std::move(s));
    }
    return out;
}

}  // namespace sanagent::agent
