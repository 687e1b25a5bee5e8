#include "sanagent/replicator/peer_protocol.h"

#include <algorithm>
#include <cstring>

#include "bytes.h"
#include "sanagent/replicator/crc32c.h"

namespace sanagent::replicator::peer {

using bytes::load_le;
using bytes::store_le;

namespace {

bool visible_ascii(const std::string& s) {
    return std::all_of(s.begin(), s.end(), [](unsigned char c) { return c > 0x20 && c < 0x7f; });
}

class Writer {
public:
    template <typename T>
    void put(T v) {
        std::uint8_t b[sizeof(T)];
        store_le(b, v);
        out.insert(out.end(), b, b + sizeof(T));
    }
    void put_bytes(std::span<const std::uint8_t> s) { out.insert(out.end(), s.begin(), s.end()); }
    std::vector<std::uint8_t> out;
};

// Reads fields in order; the first short read poisons it, checked once at the end.
class Reader {
public:
    explicit Reader(std::span<const std::uint8_t> s) : s_(s) {}
    template <typename T>
    T get() {
        if (s_.size() - pos_ < sizeof(T)) {
            bad_ = true;
            return T{};
        }
        T v = load_le<T>(s_.data() + pos_);
        pos_ += sizeof(T);
        return v;
    }
    void get_bytes(std::uint8_t* out, std::size_t n) {
        if (s_.size() - pos_ < n) {
            bad_ = true;
            return;
        }
        std::memcpy(out, s_.data() + pos_, n);
        pos_ += n;
    }
    bool ok() const { return !bad_; }
    bool at_end() const { return pos_ == s_.size(); }

private:
    std::span<const std::uint8_t> s_;
    std::size_t pos_ = 0;
    bool bad_ = false;
};

void put_gens(Writer& w, const Generations& g) {
    w.put(g.current);
    w.put(g.bitmap);
    w.put(g.history[0]);
    w.put(g.history[1]);
}
Generations get_gens(Reader& r) {
    Generations g;
    g.current = r.get<std::uint64_t>();
    g.bitmap = r.get<std::uint64_t>();
    g.history[0] = r.get<std::uint64_t>();
    g.history[1] = r.get<std::uint64_t>();
    return g;
}

bool known_type(std::uint16_t t) {
    return t >= 1 && t <= 13;
}

}  // namespace

std::array<std::uint8_t, kHeaderSize> encode_header(Type type, std::uint16_t flags, std::uint64_t seq,
                                                    std::span<const std::uint8_t> body) {
    std::array<std::uint8_t, kHeaderSize> h{};
    store_le<std::uint32_t>(h.data(), kMagic);
    store_le<std::uint16_t>(h.data() + 4, static_cast<std::uint16_t>(type));
    store_le<std::uint16_t>(h.data() + 6, flags);
    store_le<std::uint64_t>(h.data() + 8, seq);
    store_le<std::uint32_t>(h.data() + 16, static_cast<std::uint32_t>(body.size()));
    store_le<std::uint32_t>(h.data() + 20,
                            crc32c(body, crc_seed(type, flags, seq, static_cast<std::uint32_t>(body.size()))));
    return h;
}

bool old_framing(std::span<const std::uint8_t> header) {
    return header.size() >= 4 && load_le<std::uint32_t>(header.data()) == kOldMagic;
}

std::vector<std::uint8_t> encode_old_refuse(const std::string& reason) {
    auto body = encode_refuse(reason);
    std::vector<std::uint8_t> m(kHeaderSize);
    store_le<std::uint32_t>(m.data(), kOldMagic);
    store_le<std::uint16_t>(m.data() + 4, static_cast<std::uint16_t>(Type::Refuse));
    store_le<std::uint32_t>(m.data() + 16, static_cast<std::uint32_t>(body.size()));
    store_le<std::uint32_t>(m.data() + 20, crc32c(body));
    m.insert(m.end(), body.begin(), body.end());
    return m;
}

std::uint32_t crc_seed(Type type, std::uint16_t flags, std::uint64_t seq, std::uint32_t length) {
    std::array<std::uint8_t, 16> b;
    store_le<std::uint16_t>(b.data(), static_cast<std::uint16_t>(type));
    store_le<std::uint16_t>(b.data() + 2, flags);
    store_le<std::uint64_t>(b.data() + 4, seq);
    store_le<std::uint32_t>(b.data() + 12, length);
    return crc32c(b);
}

Result<Header> decode_header(std::span<const std::uint8_t> b) {
    if (b.size() != kHeaderSize) return Error{EBADMSG, "peer message: short header"};
    const auto magic = load_le<std::uint32_t>(b.data());
    if (magic == kOldMagic)
        return Error{EPROTO, "peer message framed by protocol version 5 or older (SRP1): upgrade both nodes"};
    if (magic != kMagic) return Error{EBADMSG, "peer message: bad magic"};
    auto type = load_le<std::uint16_t>(b.data() + 4);
    if (!known_type(type)) return Error{EBADMSG, "peer message: unknown type " + std::to_string(type)};
    Header h{static_cast<Type>(type), load_le<std::uint16_t>(b.data() + 6), load_le<std::uint64_t>(b.data() + 8),
             load_le<std::uint32_t>(b.data() + 16), load_le<std::uint32_t>(b.data() + 20)};
    if (h.length > kMaxBody) return Error{EMSGSIZE, "peer message: body of " + std::to_string(h.length) + " bytes"};
    return h;
}

Status check_body(const Header& header, std::span<const std::uint8_t> body) {
    if (body.size() != header.length) return Error{EBADMSG, "peer message: body length differs from header"};
    if (crc32c(body, crc_seed(header)) != header.crc)
        return Error{EBADMSG, "peer message seq " + std::to_string(header.seq) + ": CRC mismatch"};
    return {};
}

std::vector<std::uint8_t> encode_hello(const Hello& h) {
    Writer w;
    w.put(h.version);
    w.put<std::uint8_t>(h.primary ? 1 : 0);
    w.put<std::uint8_t>(h.consistent ? 1 : 0);
    w.put_bytes(h.volume_id);
    w.put<std::uint16_t>(static_cast<std::uint16_t>(h.volume.size()));
    w.put_bytes({reinterpret_cast<const std::uint8_t*>(h.volume.data()), h.volume.size()});
    w.put(h.size);
    w.put(h.granularity);
    put_gens(w, h.gens);
    w.put<std::uint16_t>(static_cast<std::uint16_t>(h.node.size()));
    w.put_bytes({reinterpret_cast<const std::uint8_t*>(h.node.data()), h.node.size()});
    w.put<std::uint16_t>(static_cast<std::uint16_t>(h.active.size()));
    for (const auto& r : h.active) {
        w.put(r.offset);
        w.put(r.length);
    }
    return w.out;
}

std::vector<Range> bounded_ranges(const std::vector<std::pair<std::uint64_t, std::uint64_t>>& ranges,
                                  std::size_t max) {
    std::vector<Range> out;
    if (ranges.empty()) return out;
    if (ranges.size() <= max) {
        for (auto [off, len] : ranges) out.push_back({off, len});
        return out;
    }
    std::uint64_t lo = UINT64_MAX, hi = 0;
    for (auto [off, len] : ranges) {
        lo = std::min(lo, off);
        hi = std::max(hi, off + len);
    }
    out.push_back({lo, hi - lo});
    return out;
}

Result<Hello> decode_hello(std::span<const std::uint8_t> body) {
    Reader r(body);
    Hello h;
    h.version = r.get<std::uint16_t>();
    if (r.ok() && h.version != kVersion)
        return Error{EPROTO, "peer HELLO: protocol version " + std::to_string(h.version) + ", we speak " +
                                 std::to_string(kVersion)};
    // Booleans are 0 or 1 exactly: one encoding per message, so what we
    // accept is what we would send (the fuzzer's round-trip check).
    auto primary = r.get<std::uint8_t>();
    auto consistent = r.get<std::uint8_t>();
    if (primary > 1 || consistent > 1) return Error{EBADMSG, "peer HELLO: flag byte not 0 or 1"};
    h.primary = primary == 1;
    h.consistent = consistent == 1;
    r.get_bytes(h.volume_id.data(), h.volume_id.size());
    auto name_len = r.get<std::uint16_t>();
    if (name_len > kMaxVolumeName) return Error{EBADMSG, "peer HELLO: volume name too long"};
    h.volume.resize(name_len);
    r.get_bytes(reinterpret_cast<std::uint8_t*>(h.volume.data()), name_len);
    // Names go into logs, errors and the status JSON: printable, no spaces.
    if (!visible_ascii(h.volume)) return Error{EBADMSG, "peer HELLO: volume name with unprintable bytes"};
    h.size = r.get<std::uint64_t>();
    h.granularity = r.get<std::uint32_t>();
    h.gens = get_gens(r);
    auto node_len = r.get<std::uint16_t>();
    if (node_len > kMaxVolumeName) return Error{EBADMSG, "peer HELLO: node name too long"};
    h.node.resize(node_len);
    r.get_bytes(reinterpret_cast<std::uint8_t*>(h.node.data()), node_len);
    if (!visible_ascii(h.node)) return Error{EBADMSG, "peer HELLO: node name with unprintable bytes"};
    // A session is known by its primary's name (one per volume, and resolve
    // --keep names it): an empty one would pass for no primary at all.
    if (h.node.empty()) return Error{EBADMSG, "peer HELLO: empty node name"};
    auto active = r.get<std::uint16_t>();
    if (active > kMaxHelloRanges) return Error{EBADMSG, "peer HELLO: too many activity ranges"};
    for (std::uint16_t i = 0; i < active && r.ok(); ++i) {
        Range a;
        a.offset = r.get<std::uint64_t>();
        a.length = r.get<std::uint64_t>();
        if (a.length == 0 || a.offset + a.length < a.offset)
            return Error{EBADMSG, "peer HELLO: empty or wrapping activity range"};
        h.active.push_back(a);
    }
    if (!r.ok() || !r.at_end()) return Error{EBADMSG, "peer HELLO: malformed body"};
    return h;
}

std::vector<std::uint8_t> encode_auth_challenge(const AuthChallenge& c) {
    Writer w;
    w.put_bytes(c.nonce);
    w.put<std::uint16_t>(static_cast<std::uint16_t>(c.volume.size()));
    w.put_bytes({reinterpret_cast<const std::uint8_t*>(c.volume.data()), c.volume.size()});
    return w.out;
}

Result<AuthChallenge> decode_auth_challenge(std::span<const std::uint8_t> body) {
    Reader r(body);
    AuthChallenge c;
    r.get_bytes(c.nonce.data(), c.nonce.size());
    auto name_len = r.get<std::uint16_t>();
    if (name_len > kMaxVolumeName) return Error{EBADMSG, "peer AUTH: volume name too long"};
    c.volume.resize(name_len);
    r.get_bytes(reinterpret_cast<std::uint8_t*>(c.volume.data()), name_len);
    if (!r.ok() || !r.at_end()) return Error{EBADMSG, "peer AUTH: malformed body"};
    return c;
}

std::vector<std::uint8_t> encode_decision(SyncDecision d) {
    return {static_cast<std::uint8_t>(d)};
}

Result<SyncDecision> decode_decision(std::span<const std::uint8_t> body) {
    if (body.size() != 1 || body[0] > static_cast<std::uint8_t>(SyncDecision::Unrelated))
        return Error{EBADMSG, "peer DECISION: malformed body"};
    return static_cast<SyncDecision>(body[0]);
}

std::array<std::uint8_t, 8> encode_write_prefix(std::uint64_t offset) {
    std::array<std::uint8_t, 8> b{};
    store_le(b.data(), offset);
    return b;
}

Result<std::uint64_t> decode_write_prefix(std::span<const std::uint8_t> body) {
    if (body.size() < 8) return Error{EBADMSG, "peer WRITE: shorter than its offset"};
    return load_le<std::uint64_t>(body.data());
}

std::vector<std::uint8_t> encode_range(const Range& range) {
    Writer w;
    w.put(range.offset);
    w.put(range.length);
    return w.out;
}

Result<Range> decode_range(std::span<const std::uint8_t> body) {
    Reader r(body);
    Range range{r.get<std::uint64_t>(), r.get<std::uint64_t>()};
    if (!r.ok() || !r.at_end()) return Error{EBADMSG, "peer ZERO/TRIM: malformed body"};
    if (range.offset + range.length < range.offset) return Error{EBADMSG, "peer ZERO/TRIM: range wraps"};
    return range;
}

std::vector<std::uint8_t> encode_ack(std::int32_t error) {
    Writer w;
    w.put(error);
    return w.out;
}

Result<std::int32_t> decode_ack(std::span<const std::uint8_t> body) {
    Reader r(body);
    auto e = r.get<std::int32_t>();
    if (!r.ok() || !r.at_end()) return Error{EBADMSG, "peer ACK: malformed body"};
    return e;
}

std::vector<std::uint8_t> encode_digest(const Digest& d) {
    Writer w;
    w.put(d.error);
    w.put(d.crc);
    return w.out;
}

Result<Digest> decode_digest(std::span<const std::uint8_t> body) {
    Reader r(body);
    Digest d{r.get<std::int32_t>(), r.get<std::uint32_t>()};
    if (!r.ok() || !r.at_end()) return Error{EBADMSG, "peer DIGEST: malformed body"};
    return d;
}

std::vector<std::uint8_t> encode_resync_done(const ResyncDone& d) {
    Writer w;
    w.put_bytes(d.volume_id);
    put_gens(w, d.gens);
    return w.out;
}

Result<ResyncDone> decode_resync_done(std::span<const std::uint8_t> body) {
    Reader r(body);
    ResyncDone d;
    r.get_bytes(d.volume_id.data(), d.volume_id.size());
    d.gens = get_gens(r);
    if (!r.ok() || !r.at_end()) return Error{EBADMSG, "peer RESYNC_DONE: malformed body"};
    return d;
}

std::vector<std::uint8_t> encode_refuse(const std::string& reason) {
    return {reason.begin(),
            reason.begin() + static_cast<std::ptrdiff_t>(std::min<std::size_t>(reason.size(), kMaxRefuse))};
}

std::string decode_refuse(std::span<const std::uint8_t> body) {
    // Free text from a peer that may not be authenticated yet: it goes into
    // logs and the status JSON, so only printable ASCII, and bounded.
    std::string out;
    for (auto c : body.first(std::min<std::size_t>(body.size(), kMaxRefuse)))
        out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
    if (body.size() > kMaxRefuse) out += " [cut]";
    return out;
}

}  // namespace sanagent::replicator::peer
