// Interface addresses over rtnetlink (RTM_GETADDR / NEWADDR / DELADDR), IPv4
// and IPv6, written as the admin writes them: "10.0.10.11/24", "fd00::11/64".
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "sanagent/netlink/socket.h"

namespace sanagent::netlink {

struct InterfaceAddress {
    int family = 0;           // AF_INET or AF_INET6
    std::string address;      // canonical text ("10.0.10.11", "fd00::11")
    unsigned prefix = 0;
    std::string text() const { return address + "/" + std::to_string(prefix); }
    bool operator==(const InterfaceAddress&) const = default;
};

// "10.0.10.11/24" -> canonical form; nullopt when it is not an address with a
// prefix length in range.
std::optional<InterfaceAddress> parse_interface_address(const std::string& text);

struct AddressState {
    int index = 0;            // the interface
    InterfaceAddress address;
    bool link_local = false;  // fe80::/10 (the kernel's own; never removed)
};

Result<std::vector<AddressState>> dump_addresses(NetlinkSocket& socket);
Status add_address(NetlinkSocket& socket, const std::string& interface, const InterfaceAddress& address);
Status delete_address(NetlinkSocket& socket, const std::string& interface, const InterfaceAddress& address);

}  // namespace sanagent::netlink
