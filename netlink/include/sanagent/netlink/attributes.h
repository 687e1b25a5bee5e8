// Range-for over netlink attributes. libmnl's iteration macros rely on C's
// implicit void* conversions and do not compile as C++, so this wraps the same
// mnl_attr_ok / mnl_attr_next walk in an iterator.
#pragma once

#include <libmnl/libmnl.h>

namespace sanagent::netlink {

class AttributeRange {
public:
    AttributeRange(const void* start, int length) : start_(static_cast<const nlattr*>(start)), length_(length) {}

    class iterator {
    public:
        iterator(const nlattr* attr, int left) : attr_(attr), left_(left) { settle(); }
        const nlattr* operator*() const { return attr_; }
        iterator& operator++() {
            left_ -= static_cast<int>(MNL_ALIGN(attr_->nla_len));
            attr_ = mnl_attr_next(attr_);
            settle();
            return *this;
        }
        bool operator!=(const iterator& other) const { return attr_ != other.attr_; }

    private:
        void settle() {
            if (attr_ && !mnl_attr_ok(attr_, left_)) attr_ = nullptr;
        }
        const nlattr* attr_;
        int left_;
    };

    iterator begin() const { return {start_, length_}; }
    iterator end() const { return {nullptr, 0}; }

private:
    const nlattr* start_;
    int length_;
};

// The attributes of a message after its family header of `header_size` bytes.
inline AttributeRange attributes(const nlmsghdr& nlh, std::size_t header_size) {
    const auto* start = static_cast<const char*>(mnl_nlmsg_get_payload_offset(&nlh, header_size));
    const auto* end = static_cast<const char*>(mnl_nlmsg_get_payload_tail(&nlh));
    return {start, static_cast<int>(end - start)};
}

// The attributes nested inside `attr`.
inline AttributeRange nested(const nlattr* attr) {
    return {mnl_attr_get_payload(attr), static_cast<int>(mnl_attr_get_payload_len(attr))};
}

}  // namespace sanagent::netlink
