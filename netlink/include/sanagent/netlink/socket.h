// NetlinkSocket: one rtnetlink socket (libmnl), owned, bound, with sequence
// numbers and the kernel's extended ack turned on so errors carry its message.
// It works in whatever network namespace the calling thread is in.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "sanagent/result.h"

struct mnl_socket;
struct nlmsghdr;

namespace sanagent::netlink {

class NetlinkSocket {
public:
    // Opens and binds a NETLINK_ROUTE socket.
    static Result<NetlinkSocket> open_route();

    NetlinkSocket(NetlinkSocket&&) noexcept;
    NetlinkSocket& operator=(NetlinkSocket&&) noexcept;
    ~NetlinkSocket();

    // Sends a request built in `request` (an nlmsghdr with NLM_F_REQUEST set;
    // seq and pid are filled here) and feeds every answer message to `on_message`
    // until the dump is done or the ack arrives. `doing` names the operation for
    // errors: "dumping links: netlink: Operation not permitted (kernel: ...)".
    using MessageHandler = std::function<void(const nlmsghdr&)>;
    Status transact(nlmsghdr& request, const std::string& doing, const MessageHandler& on_message);

private:
    struct Closer {
        void operator()(mnl_socket* s) const;
    };
    explicit NetlinkSocket(mnl_socket* s);
    std::unique_ptr<mnl_socket, Closer> socket_;
    std::uint32_t port_id_ = 0;
    std::uint32_t next_seq_ = 1;
};

}  // namespace sanagent::netlink
