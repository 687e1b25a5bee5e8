#include "sanagent/netlink/link.h"

#include "sanagent/netlink/attributes.h"

#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#include <array>
#include <cstdio>

namespace sanagent::netlink {

std::string oper_state_name(std::uint8_t state) {
    static constexpr std::array<const char*, 7> names{"unknown", "notpresent", "down", "lowerlayerdown",
                                                      "testing", "dormant", "up"};
    return state < names.size() ? names[state] : "unknown";
}

std::optional<LinkState> parse_link_message(const nlmsghdr& nlh) {
    if (nlh.nlmsg_type != RTM_NEWLINK && nlh.nlmsg_type != RTM_DELLINK) return std::nullopt;
    const auto* ifm = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(&nlh));
    LinkState link;
    link.index = ifm->ifi_index;
    link.admin_up = (ifm->ifi_flags & IFF_UP) != 0;
    for (const nlattr* attr : attributes(nlh, sizeof(*ifm))) {
        switch (mnl_attr_get_type(attr)) {
        case IFLA_IFNAME:
            if (mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0) link.name = mnl_attr_get_str(attr);
            break;
        case IFLA_MTU:
            if (mnl_attr_validate(attr, MNL_TYPE_U32) == 0) link.mtu = mnl_attr_get_u32(attr);
            break;
        case IFLA_OPERSTATE:
            if (mnl_attr_validate(attr, MNL_TYPE_U8) == 0) link.oper_state = oper_state_name(mnl_attr_get_u8(attr));
            break;
        case IFLA_MASTER:
            if (mnl_attr_validate(attr, MNL_TYPE_U32) == 0) link.master_index = static_cast<int>(mnl_attr_get_u32(attr));
            break;
        case IFLA_IFALIAS:
            if (mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0) link.alias = mnl_attr_get_str(attr);
            break;
        case IFLA_ADDRESS: {
            auto len = mnl_attr_get_payload_len(attr);
            const auto* bytes = static_cast<const unsigned char*>(mnl_attr_get_payload(attr));
            for (unsigned i = 0; i < len; ++i) {
                char part[4];
                std::snprintf(part, sizeof part, i ? ":%02x" : "%02x", bytes[i]);
                link.mac += part;
            }
            break;
        }
        case IFLA_LINKINFO: {
            for (const nlattr* info : nested(attr)) {
                if (mnl_attr_get_type(info) == IFLA_INFO_KIND && mnl_attr_validate(info, MNL_TYPE_STRING) == 0)
                    link.kind = mnl_attr_get_str(info);
            }
            break;
        }
        default:
            break;
        }
    }
    return link;
}

Result<std::vector<LinkState>> dump_links(NetlinkSocket& socket) {
    alignas(nlmsghdr) std::array<char, 512> buf{};
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
    nlh->nlmsg_type = RTM_GETLINK;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
    ifm->ifi_family = AF_UNSPEC;

    std::vector<LinkState> links;
    auto status = socket.transact(*nlh, "dumping links", [&](const nlmsghdr& m) {
        if (m.nlmsg_type != RTM_NEWLINK) return;
        if (auto link = parse_link_message(m)) links.push_back(std::move(*link));
    });
    if (!status) return status.error();
    return links;
}

}  // namespace sanagent::netlink
