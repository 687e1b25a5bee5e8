// Links as rtnetlink reports them (RTM_GETLINK dump): the observed state every
// link-kind module (bond, plain link) starts from.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sanagent/netlink/socket.h"

namespace sanagent::netlink {

struct LinkState {
    int index = 0;
    std::string name;
    std::string kind;         // IFLA_INFO_KIND: "bond", "veth", "bridge", ""...
    std::uint32_t mtu = 0;
    std::string oper_state;   // "up", "down", "lowerlayerdown", "unknown"...
    bool admin_up = false;    // IFF_UP
    int master_index = 0;     // IFLA_MASTER, 0 when none
    std::string alias;        // IFLA_IFALIAS (the admin's description)
    std::string mac;          // "52:54:00:..", empty when the link has none
};

Result<std::vector<LinkState>> dump_links(NetlinkSocket& socket);

// One RTM_NEWLINK message's plain link fields (nullopt for other types).
std::optional<LinkState> parse_link_message(const nlmsghdr& nlh);

// RFC 2863 names, as `ip link` prints them in lower case.
std::string oper_state_name(std::uint8_t state);

}  // namespace sanagent::netlink
