#include "sanagent/netlink/socket.h"

#include "sanagent/netlink/attributes.h"

#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace sanagent::netlink {

void NetlinkSocket::Closer::operator()(mnl_socket* s) const { mnl_socket_close(s); }

NetlinkSocket::NetlinkSocket(mnl_socket* s) : socket_(s), port_id_(mnl_socket_get_portid(s)) {}
NetlinkSocket::NetlinkSocket(NetlinkSocket&&) noexcept = default;
NetlinkSocket& NetlinkSocket::operator=(NetlinkSocket&&) noexcept = default;
NetlinkSocket::~NetlinkSocket() = default;

Result<NetlinkSocket> NetlinkSocket::open_route() {
    mnl_socket* s = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
    if (!s) return last_errno("opening rtnetlink socket");
    NetlinkSocket sock(s);
    if (mnl_socket_bind(s, 0, MNL_SOCKET_AUTOPID) < 0) return last_errno("binding rtnetlink socket");
    sock.port_id_ = mnl_socket_get_portid(s);
    // Extended acks put the kernel's own reason in NLMSGERR_ATTR_MSG.
    int one = 1;
    mnl_socket_setsockopt(s, NETLINK_EXT_ACK, &one, sizeof one);
    mnl_socket_setsockopt(s, NETLINK_CAP_ACK, &one, sizeof one);
    return sock;
}

namespace {

struct Exchange {
    const NetlinkSocket::MessageHandler* handler;
    std::string kernel_message;
};

int on_data(const nlmsghdr* nlh, void* data) {
    auto* ex = static_cast<Exchange*>(data);
    (*ex->handler)(*nlh);
    return MNL_CB_OK;
}

// NLMSG_ERROR with the extended-ack TLVs after the (capped) original header.
int on_error(const nlmsghdr* nlh, void* data) {
    auto* ex = static_cast<Exchange*>(data);
    const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
    if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(nlmsgerr))) {
        errno = EBADMSG;
        return MNL_CB_ERROR;
    }
    if (nlh->nlmsg_flags & NLM_F_ACK_TLVS) {
        unsigned offset = sizeof(nlmsghdr) + sizeof(nlmsgerr);
        if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) offset += err->msg.nlmsg_len - sizeof(nlmsghdr);
        if (offset < nlh->nlmsg_len) {
            const auto* base = reinterpret_cast<const char*>(nlh);
            for (const nlattr* attr : AttributeRange(base + offset, static_cast<int>(nlh->nlmsg_len - offset))) {
                if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG && mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0)
                    ex->kernel_message = mnl_attr_get_str(attr);
            }
        }
    }
    if (err->error < 0) {
        errno = -err->error;
        return MNL_CB_ERROR;
    }
    return MNL_CB_STOP;
}

}  // namespace

Status NetlinkSocket::transact(nlmsghdr& request, const std::string& doing, const MessageHandler& on_message) {
    request.nlmsg_seq = next_seq_++;
    request.nlmsg_pid = 0;
    if (mnl_socket_sendto(socket_.get(), &request, request.nlmsg_len) < 0) return last_errno(doing + ": netlink send");

    // Dumps come in messages of up to 32 KiB (the kernel uses max(page, 32 KiB)).
    std::vector<char> buf(32768);
    Exchange ex{&on_message, {}};
    mnl_cb_t ctl[NLMSG_MIN_TYPE] = {};
    // Given a control array, libmnl uses none of its defaults: DONE must stop here.
    ctl[NLMSG_ERROR] = on_error;
    ctl[NLMSG_DONE] = [](const nlmsghdr*, void*) { return MNL_CB_STOP; };
    for (;;) {
        ssize_t n = mnl_socket_recvfrom(socket_.get(), buf.data(), buf.size());
        if (n < 0) return last_errno(doing + ": netlink receive");
        int r = mnl_cb_run2(buf.data(), static_cast<size_t>(n), request.nlmsg_seq, port_id_, on_data, &ex, ctl,
                            NLMSG_MIN_TYPE);
        if (r == MNL_CB_STOP) return {};
        if (r < 0) {
            Error e = errno_error(errno, doing + ": netlink");
            if (!ex.kernel_message.empty()) e.message += " (kernel: " + ex.kernel_message + ")";
            return e;
        }
    }
}

}  // namespace sanagent::netlink
