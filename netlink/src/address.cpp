// glibc's net/if.h must come before the kernel's headers (libc-compat.h).
#include <net/if.h>
//
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>

#include <array>
#include <charconv>

#include "sanagent/netlink/address.h"
#include "sanagent/netlink/attributes.h"

namespace sanagent::netlink {

std::optional<InterfaceAddress> parse_interface_address(const std::string& text) {
    auto slash = text.find('/');
    if (slash == std::string::npos || slash + 1 >= text.size()) return std::nullopt;
    const std::string host = text.substr(0, slash);
    unsigned prefix = 0;
    auto [end, ec] = std::from_chars(text.data() + slash + 1, text.data() + text.size(), prefix);
    if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    unsigned char buf[16];
    char canon[INET6_ADDRSTRLEN];
    InterfaceAddress a;
    if (::inet_pton(AF_INET, host.c_str(), buf) == 1) {
        if (prefix > 32) return std::nullopt;
        a.family = AF_INET;
    } else if (::inet_pton(AF_INET6, host.c_str(), buf) == 1) {
        if (prefix > 128) return std::nullopt;
        a.family = AF_INET6;
    } else {
        return std::nullopt;
    }
    ::inet_ntop(a.family, buf, canon, sizeof canon);
    a.address = canon;
    a.prefix = prefix;
    return a;
}

Result<std::vector<AddressState>> dump_addresses(NetlinkSocket& socket) {
    alignas(nlmsghdr) std::array<char, 256> buf{};
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
    nlh->nlmsg_type = RTM_GETADDR;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
    ifa->ifa_family = AF_UNSPEC;
    std::vector<AddressState> out;
    auto st = socket.transact(*nlh, "dumping addresses", [&](const nlmsghdr& m) {
        if (m.nlmsg_type != RTM_NEWADDR) return;
        const auto* msg = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(&m));
        AddressState s;
        s.index = static_cast<int>(msg->ifa_index);
        s.address.family = msg->ifa_family;
        s.address.prefix = msg->ifa_prefixlen;
        // IFA_LOCAL is the interface's own address on point-to-point links;
        // IFA_ADDRESS otherwise (they are equal on broadcast links).
        std::string local, address;
        for (const nlattr* a : attributes(m, sizeof(ifaddrmsg))) {
            auto type = mnl_attr_get_type(a);
            if (type != IFA_LOCAL && type != IFA_ADDRESS) continue;
            char text[INET6_ADDRSTRLEN] = {};
            auto len = mnl_attr_get_payload_len(a);
            if ((msg->ifa_family == AF_INET && len != 4) || (msg->ifa_family == AF_INET6 && len != 16)) continue;
            ::inet_ntop(msg->ifa_family, mnl_attr_get_payload(a), text, sizeof text);
            (type == IFA_LOCAL ? local : address) = text;
        }
        s.address.address = local.empty() ? address : local;
        s.link_local = msg->ifa_family == AF_INET6 && s.address.address.rfind("fe80:", 0) == 0;
        if (!s.address.address.empty()) out.push_back(std::move(s));
    });
    if (!st) return st.error();
    return out;
}

namespace {

Status change_address(NetlinkSocket& socket, int type, const std::string& interface, const InterfaceAddress& a) {
    const std::string doing = (type == RTM_NEWADDR ? "adding " : "removing ") + a.text() +
                              (type == RTM_NEWADDR ? " to " : " from ") + interface;
    unsigned index = ::if_nametoindex(interface.c_str());
    if (!index) return errno_error(ENODEV, doing + ": no interface " + interface);
    alignas(nlmsghdr) std::array<char, 256> buf{};
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
    nlh->nlmsg_type = static_cast<std::uint16_t>(type);
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (type == RTM_NEWADDR ? NLM_F_CREATE | NLM_F_EXCL : 0);
    auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
    ifa->ifa_family = static_cast<std::uint8_t>(a.family);
    ifa->ifa_prefixlen = static_cast<std::uint8_t>(a.prefix);
    ifa->ifa_index = index;
    unsigned char bytes[16];
    ::inet_pton(a.family, a.address.c_str(), bytes);
    const auto len = a.family == AF_INET ? 4u : 16u;
    mnl_attr_put(nlh, IFA_LOCAL, len, bytes);
    mnl_attr_put(nlh, IFA_ADDRESS, len, bytes);
    return socket.transact(*nlh, doing, [](const nlmsghdr&) {});
}

}  // namespace

Status add_address(NetlinkSocket& socket, const std::string& interface, const InterfaceAddress& address) {
    return change_address(socket, RTM_NEWADDR, interface, address);
}

Status delete_address(NetlinkSocket& socket, const std::string& interface, const InterfaceAddress& address) {
    return change_address(socket, RTM_DELADDR, interface, address);
}

}  // namespace sanagent::netlink
