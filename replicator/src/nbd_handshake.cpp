#include "sanagent/replicator/nbd_handshake.h"

#include "bytes.h"

namespace sanagent::replicator::nbd {

using bytes::load_be;
using bytes::store_be;

namespace {

void put_u16(std::vector<std::uint8_t>& out, std::uint16_t v) {
    std::uint8_t b[2];
    store_be(b, v);
    out.insert(out.end(), b, b + 2);
}
void put_u32(std::vector<std::uint8_t>& out, std::uint32_t v) {
    std::uint8_t b[4];
    store_be(b, v);
    out.insert(out.end(), b, b + 4);
}
void put_u64(std::vector<std::uint8_t>& out, std::uint64_t v) {
    std::uint8_t b[8];
    store_be(b, v);
    out.insert(out.end(), b, b + 8);
}
void append(std::vector<std::uint8_t>& out, const std::vector<std::uint8_t>& more) {
    out.insert(out.end(), more.begin(), more.end());
}

std::vector<std::uint8_t> info_export(const ExportInfo& exp) {
    std::vector<std::uint8_t> d;
    put_u16(d, kInfoExport);
    put_u64(d, exp.size);
    put_u16(d, exp.transmission_flags);
    return d;
}

std::vector<std::uint8_t> info_block_size(const ExportInfo& exp) {
    std::vector<std::uint8_t> d;
    put_u16(d, kInfoBlockSize);
    put_u32(d, exp.min_block);
    put_u32(d, exp.preferred_block);
    put_u32(d, exp.max_block);
    return d;
}

std::vector<std::uint8_t> info_name(const ExportInfo& exp) {
    std::vector<std::uint8_t> d;
    put_u16(d, kInfoName);
    d.insert(d.end(), exp.name.begin(), exp.name.end());
    return d;
}

bool names_export(const ExportInfo& exp, const std::string& name) {
    return name.empty() || name == exp.name;
}

Outcome info_or_go(const ExportInfo& exp, std::uint32_t option, std::span<const std::uint8_t> data) {
    Outcome o;
    auto req = decode_info_request(data);
    if (!req.ok()) {
        o.reply = encode_option_reply(option, kRepErrInvalid);
        return o;
    }
    if (!names_export(exp, req->name)) {
        o.reply = encode_option_reply(option, kRepErrUnknown);
        return o;
    }
    // NBD_INFO_EXPORT always; block sizes always too (the spec lets a server
    // send them unasked, and clients that honour them avoid read-modify-write
    // below our direct-I/O alignment); the name only when asked.
    append(o.reply, encode_option_reply(option, kRepInfo, info_export(exp)));
    append(o.reply, encode_option_reply(option, kRepInfo, info_block_size(exp)));
    for (auto info : req->infos) {
        if (info == kInfoName) append(o.reply, encode_option_reply(option, kRepInfo, info_name(exp)));
    }
    append(o.reply, encode_option_reply(option, kRepAck));
    o.next = option == kOptGo ? Next::Transmit : Next::Continue;
    return o;
}

}  // namespace

std::vector<std::uint8_t> encode_greeting() {
    std::vector<std::uint8_t> out;
    put_u64(out, kNbdMagic);
    put_u64(out, kOptionMagic);
    put_u16(out, kFlagFixedNewstyle | kFlagNoZeroes);
    return out;
}

Result<std::uint32_t> decode_client_flags(std::span<const std::uint8_t> bytes) {
    if (bytes.size() != 4) return Error{EPROTO, "NBD client flags: need 4 bytes"};
    auto flags = load_be<std::uint32_t>(bytes.data());
    if (!(flags & kFlagFixedNewstyle)) return Error{EPROTO, "NBD client flags: client is not fixed-newstyle"};
    if (flags & ~std::uint32_t{kFlagFixedNewstyle | kFlagNoZeroes})
        return Error{EPROTO, "NBD client flags: unknown flags " + std::to_string(flags)};
    return flags;
}

Result<OptionHeader> decode_option_header(std::span<const std::uint8_t> bytes) {
    if (bytes.size() != kOptionHeaderSize) return Error{EBADMSG, "NBD option: short header"};
    if (load_be<std::uint64_t>(bytes.data()) != kOptionMagic) return Error{EBADMSG, "NBD option: bad magic"};
    OptionHeader h{load_be<std::uint32_t>(bytes.data() + 8), load_be<std::uint32_t>(bytes.data() + 12)};
    if (h.length > kMaxOptionLength)
        return Error{EMSGSIZE, "NBD option " + std::to_string(h.option) + ": length " + std::to_string(h.length) +
                                   " over " + std::to_string(kMaxOptionLength)};
    return h;
}

Result<InfoRequest> decode_info_request(std::span<const std::uint8_t> data) {
    if (data.size() < 6) return Error{EBADMSG, "NBD INFO/GO: shorter than its framing"};
    auto name_len = load_be<std::uint32_t>(data.data());
    if (name_len > data.size() - 6) return Error{EBADMSG, "NBD INFO/GO: name runs past the option"};
    InfoRequest r;
    r.name.assign(reinterpret_cast<const char*>(data.data() + 4), name_len);
    std::size_t pos = 4 + name_len;
    auto count = load_be<std::uint16_t>(data.data() + pos);
    pos += 2;
    if (data.size() - pos != std::size_t{count} * 2) return Error{EBADMSG, "NBD INFO/GO: info count does not match"};
    for (std::uint16_t i = 0; i < count; ++i, pos += 2) r.infos.push_back(load_be<std::uint16_t>(data.data() + pos));
    return r;
}

Outcome negotiate(const ExportInfo& exp, bool no_zeroes, std::uint32_t option, std::span<const std::uint8_t> data,
                  Tls tls) {
    Outcome o;
    if (option == kOptStartTls) {
        if (tls == Tls::Off) {
            o.reply = encode_option_reply(option, kRepErrUnsup);
        } else if (tls == Tls::Active || !data.empty()) {
            o.reply = encode_option_reply(option, kRepErrInvalid);  // no second TLS inside the first
        } else {
            o.reply = encode_option_reply(option, kRepAck);
            o.next = Next::StartTls;
        }
        return o;
    }
    if (tls == Tls::Required && option != kOptAbort) {
        // EXPORT_NAME has no error reply: the spec says to end the session.
        if (option == kOptExportName)
            o.next = Next::Close;
        else
            o.reply = encode_option_reply(option, kRepErrTlsReqd);
        return o;
    }
    switch (option) {
        case kOptExportName: {
            // The old way in: no option reply; an unknown name can only be
            // answered by closing the connection.
            std::string name(reinterpret_cast<const char*>(data.data()), data.size());
            if (!names_export(exp, name)) {
                o.next = Next::Close;
                return o;
            }
            put_u64(o.reply, exp.size);
            put_u16(o.reply, exp.transmission_flags);
            if (!no_zeroes) o.reply.resize(o.reply.size() + 124, 0);
            o.next = Next::Transmit;
            return o;
        }
        case kOptAbort:
            o.reply = encode_option_reply(option, kRepAck);
            o.next = Next::Close;
            return o;
        case kOptList: {
            if (!data.empty()) {
                o.reply = encode_option_reply(option, kRepErrInvalid);
                return o;
            }
            std::vector<std::uint8_t> entry;
            put_u32(entry, static_cast<std::uint32_t>(exp.name.size()));
            entry.insert(entry.end(), exp.name.begin(), exp.name.end());
            append(o.reply, encode_option_reply(option, kRepServer, entry));
            append(o.reply, encode_option_reply(option, kRepAck));
            return o;
        }
        case kOptInfo:
        case kOptGo:
            return info_or_go(exp, option, data);
        default:
            // Structured replies, meta contexts: not offered. Simple replies
            // are all the kernel client reads anyway.
            o.reply = encode_option_reply(option, kRepErrUnsup);
            return o;
    }
}

std::vector<std::uint8_t> encode_option_reply(std::uint32_t option, std::uint32_t type,
                                              std::span<const std::uint8_t> data) {
    std::vector<std::uint8_t> out;
    out.reserve(kOptionReplyHeaderSize + data.size());
    put_u64(out, kOptionReplyMagic);
    put_u32(out, option);
    put_u32(out, type);
    put_u32(out, static_cast<std::uint32_t>(data.size()));
    out.insert(out.end(), data.begin(), data.end());
    return out;
}

std::vector<std::uint8_t> encode_option(std::uint32_t option, std::span<const std::uint8_t> data) {
    std::vector<std::uint8_t> out;
    put_u64(out, kOptionMagic);
    put_u32(out, option);
    put_u32(out, static_cast<std::uint32_t>(data.size()));
    out.insert(out.end(), data.begin(), data.end());
    return out;
}

std::vector<std::uint8_t> encode_info_request(const InfoRequest& request) {
    std::vector<std::uint8_t> out;
    put_u32(out, static_cast<std::uint32_t>(request.name.size()));
    out.insert(out.end(), request.name.begin(), request.name.end());
    put_u16(out, static_cast<std::uint16_t>(request.infos.size()));
    for (auto i : request.infos) put_u16(out, i);
    return out;
}

Result<OptionReplyHeader> decode_option_reply_header(std::span<const std::uint8_t> bytes) {
    if (bytes.size() != kOptionReplyHeaderSize) return Error{EBADMSG, "NBD option reply: short header"};
    if (load_be<std::uint64_t>(bytes.data()) != kOptionReplyMagic) return Error{EBADMSG, "NBD option reply: bad magic"};
    return OptionReplyHeader{load_be<std::uint32_t>(bytes.data() + 8), load_be<std::uint32_t>(bytes.data() + 12),
                             load_be<std::uint32_t>(bytes.data() + 16)};
}

}  // namespace sanagent::replicator::nbd
