#include "sanagent/replicator/peer_io.h"

#include "sanagent/replicator/crc32c.h"
#include "sanagent/replicator/net.h"

namespace sanagent::replicator::peer {

Result<Message> receive(int fd) {
    std::array<std::uint8_t, kHeaderSize> hb;
    if (auto st = read_full(fd, hb); !st) return st.error();
    auto h = decode_header(hb);
    if (!h) return h.error();
    Message m;
    m.header = *h;
    if (h->type == Type::Write) {
        std::array<std::uint8_t, 8> prefix;
        if (h->length < prefix.size()) return Error{EBADMSG, "peer WRITE: shorter than its offset"};
        if (auto st = read_full(fd, prefix); !st) return st.error();
        m.write_offset = *decode_write_prefix(prefix);
        m.write_data = std::make_shared<AlignedBuffer>(h->length - prefix.size());
        if (auto st = read_full(fd, m.write_data->span()); !st) return st.error();
        if (crc32c(m.write_data->span(), crc32c(prefix)) != h->crc)
            return Error{EBADMSG, "peer WRITE seq " + std::to_string(h->seq) + ": CRC mismatch"};
        return m;
    }
    m.body.resize(h->length);
    if (auto st = read_full(fd, m.body); !st) return st.error();
    if (auto st = check_body(*h, m.body); !st) return st.error();
    return m;
}

Result<Message> receive_small(int fd, std::uint32_t max_body) {
    std::array<std::uint8_t, kHeaderSize> hb;
    if (auto st = read_full(fd, hb); !st) return st.error();
    auto h = decode_header(hb);
    if (!h) return h.error();
    if (h->type == Type::Write || h->length > max_body)
        return Error{EMSGSIZE, "peer message of type " + std::to_string(static_cast<int>(h->type)) + " with " +
                                   std::to_string(h->length) + " bytes during the handshake"};
    Message m;
    m.header = *h;
    m.body.resize(h->length);
    if (auto st = read_full(fd, m.body); !st) return st.error();
    if (auto st = check_body(*h, m.body); !st) return st.error();
    return m;
}

Status send(int fd, Type type, std::uint16_t flags, std::uint64_t seq, std::span<const std::uint8_t> body) {
    auto h = encode_header(type, flags, seq, body);
    struct iovec iov[2] = {{h.data(), h.size()}, {const_cast<std::uint8_t*>(body.data()), body.size()}};
    return writev_full(fd, iov, body.empty() ? 1 : 2);
}

Status send_write(int fd, std::uint16_t flags, std::uint64_t seq, std::uint64_t offset,
                  std::span<const std::uint8_t> data) {
    auto prefix = encode_write_prefix(offset);
    auto h = encode_header(Type::Write, flags, seq, prefix);
    // The header's length and CRC cover prefix + data.
    {
        std::uint32_t len = static_cast<std::uint32_t>(prefix.size() + data.size());
        std::uint32_t crc = crc32c(data, crc32c(prefix));
        for (int i = 0; i < 4; ++i) {
            h[16 + i] = static_cast<std::uint8_t>(len >> (8 * i));
            h[20 + i] = static_cast<std::uint8_t>(crc >> (8 * i));
        }
    }
    struct iovec iov[3] = {
        {h.data(), h.size()}, {prefix.data(), prefix.size()}, {const_cast<std::uint8_t*>(data.data()), data.size()}};
    return writev_full(fd, iov, 3);
}

}  // namespace sanagent::replicator::peer
