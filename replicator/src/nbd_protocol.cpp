#include "sanagent/replicator/nbd_protocol.h"

#include <cerrno>

#include "bytes.h"

namespace sanagent::replicator::nbd {

using bytes::load_be;
using bytes::store_be;

Result<Request> decode_request(std::span<const std::uint8_t, kRequestSize> bytes) {
    const std::uint8_t* p = bytes.data();
    if (load_be<std::uint32_t>(p) != kRequestMagic) return Error{EBADMSG, "NBD request: bad magic"};
    Request r;
    r.flags = load_be<std::uint16_t>(p + 4);
    r.type = static_cast<CommandType>(load_be<std::uint16_t>(p + 6));
    r.handle = load_be<std::uint64_t>(p + 8);
    r.offset = load_be<std::uint64_t>(p + 16);
    r.length = load_be<std::uint32_t>(p + 24);
    return r;
}

std::array<std::uint8_t, kRequestSize> encode_request(const Request& r) {
    std::array<std::uint8_t, kRequestSize> out{};
    store_be<std::uint32_t>(out.data(), kRequestMagic);
    store_be<std::uint16_t>(out.data() + 4, r.flags);
    store_be<std::uint16_t>(out.data() + 6, static_cast<std::uint16_t>(r.type));
    store_be<std::uint64_t>(out.data() + 8, r.handle);
    store_be<std::uint64_t>(out.data() + 16, r.offset);
    store_be<std::uint32_t>(out.data() + 24, r.length);
    return out;
}

std::uint32_t wire_error(int host_errno) {
    switch (host_errno) {
        case 0:
            return 0;
        case EPERM:
        case EROFS:
            return kErrPerm;
        case ENOMEM:
            return kErrNoMem;
        case EINVAL:
            return kErrInval;
        // The spec: EDQUOT and EFBIG as ENOSPC; EOVERFLOW only for a server
        // that offers DF (structured reads), which this one does not.
        case ENOSPC:
        case EDQUOT:
        case EFBIG:
            return kErrNoSpc;
        case EOPNOTSUPP:
            return kErrNotSup;
        case ESHUTDOWN:
            return kErrShutdown;
        default:
            return kErrIo;
    }
}

RequestCheck check_request(const Request& r, std::uint64_t export_size, std::uint32_t max_payload) {
    bool known = false;
    std::uint16_t allowed_flags = 0;
    switch (r.type) {
        case CommandType::Read:
            known = true;
            break;
        case CommandType::Write:
            known = true;
            allowed_flags = kCmdFlagFua;
            break;
        case CommandType::Disconnect:
            return {};
        case CommandType::Flush:
            known = true;
            break;
        case CommandType::Trim:
            known = true;
            allowed_flags = kCmdFlagFua;
            break;
        case CommandType::WriteZeroes:
            known = true;
            allowed_flags = kCmdFlagFua | kCmdFlagNoHole;
            break;
    }
    // A WRITE's payload follows its header: one too large to take in would
    // leave the stream out of step, so the connection ends. A READ's is
    // only asked for: refused, and the stream goes on.
    if (r.type == CommandType::Write && r.length > max_payload)
        return {Verdict::Close, kErrOverflow,
                "payload of " + std::to_string(r.length) + " bytes over the maximum " + std::to_string(max_payload)};
    if (r.type == CommandType::Read && r.length > max_payload)
        return {Verdict::ReplyError, kErrInval,
                "read of " + std::to_string(r.length) + " bytes over the maximum " + std::to_string(max_payload)};
    if (!known) return {Verdict::ReplyError, kErrInval, "unknown command " + std::to_string(static_cast<int>(r.type))};
    // FUA is valid on every command (the spec: the server MUST accept it,
    // even by ignoring it; clients are known to set it on reads and flushes).
    allowed_flags |= kCmdFlagFua;
    if (r.flags & ~allowed_flags) return {Verdict::ReplyError, kErrInval, "flags not valid for this command"};
    if (r.type == CommandType::Flush) {
        if (r.offset != 0 || r.length != 0) return {Verdict::ReplyError, kErrInval, "FLUSH with a range"};
        return {};
    }
    if (r.length == 0) return {Verdict::ReplyError, kErrInval, "zero-length request"};
    if (r.offset > export_size || r.length > export_size - r.offset)
        return {Verdict::ReplyError, kErrInval, "request past the end of the export"};
    return {};
}

std::array<std::uint8_t, kSimpleReplySize> encode_simple_reply(std::uint32_t error, std::uint64_t handle) {
    std::array<std::uint8_t, kSimpleReplySize> out{};
    store_be<std::uint32_t>(out.data(), kSimpleReplyMagic);
    store_be<std::uint32_t>(out.data() + 4, error);
    store_be<std::uint64_t>(out.data() + 8, handle);
    return out;
}

}  // namespace sanagent::replicator::nbd
