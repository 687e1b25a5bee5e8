// LinkEventMonitor: an rtnetlink socket subscribed to link and address
// changes (RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR), for a poll
// loop. The daemon does not act on each message: it drains them and
// reconciles once after a short quiet period, so a flapping port costs one
// pass, not hundreds.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "sanagent/netlink/socket.h"

struct mnl_socket;

namespace sanagent::netlink {

class LinkEventMonitor {
public:
    static Result<LinkEventMonitor> open();
    LinkEventMonitor(LinkEventMonitor&&) noexcept;
    LinkEventMonitor& operator=(LinkEventMonitor&&) noexcept;
    ~LinkEventMonitor();

    int fd() const;
    // Reads every pending message without blocking; returns the names of the
    // interfaces they were about (links) or "address" for address changes.
    // An overrun (ENOBUFS: the kernel dropped events) is reported as "overrun":
    // the caller re-reads everything anyway.
    std::vector<std::string> drain();

private:
    struct Closer {
        void operator()(mnl_socket* s) const;
    };
    explicit LinkEventMonitor(mnl_socket* s) : socket_(s) {}
    std::unique_ptr<mnl_socket, Closer> socket_;
};

}  // namespace sanagent::netlink
