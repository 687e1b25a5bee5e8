#include "sanagent/netlink/events.h"

#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <array>

#include "sanagent/netlink/link.h"

namespace sanagent::netlink {

void LinkEventMonitor::Closer::operator()(mnl_socket* s) const { mnl_socket_close(s); }
LinkEventMonitor::LinkEventMonitor(LinkEventMonitor&&) noexcept = default;
LinkEventMonitor& LinkEventMonitor::operator=(LinkEventMonitor&&) noexcept = default;
LinkEventMonitor::~LinkEventMonitor() = default;

Result<LinkEventMonitor> LinkEventMonitor::open() {
    mnl_socket* s = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (!s) return last_errno("opening the link event socket");
    LinkEventMonitor monitor(s);
    const unsigned groups = (1u << (RTNLGRP_LINK - 1)) | (1u << (RTNLGRP_IPV4_IFADDR - 1)) |
                            (1u << (RTNLGRP_IPV6_IFADDR - 1));
    if (mnl_socket_bind(s, groups, MNL_SOCKET_AUTOPID) < 0) return last_errno("subscribing to link events");
    return monitor;
}

int LinkEventMonitor::fd() const { return mnl_socket_get_fd(socket_.get()); }

std::vector<std::string> LinkEventMonitor::drain() {
    std::vector<std::string> events;
    std::array<char, 32768> buf;
    for (int guard = 0; guard < 1024; ++guard) {
        ssize_t n = mnl_socket_recvfrom(socket_.get(), buf.data(), buf.size());
        if (n < 0) {
            if (errno == ENOBUFS) {
                events.emplace_back("overrun");
                continue;
            }
            break;  // EAGAIN: drained
        }
        int left = static_cast<int>(n);
        for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buf.data()); mnl_nlmsg_ok(nlh, left);
             nlh = mnl_nlmsg_next(nlh, &left)) {
            if (nlh->nlmsg_type == RTM_NEWLINK || nlh->nlmsg_type == RTM_DELLINK) {
                if (auto link = parse_link_message(*nlh)) events.push_back(link->name);
            } else if (nlh->nlmsg_type == RTM_NEWADDR || nlh->nlmsg_type == RTM_DELADDR) {
                events.emplace_back("address");
            }
        }
    }
    return events;
}

}  // namespace sanagent::netlink
