// libFuzzer target: every decoder of the peer protocol on untrusted bytes
// from the network (header, then the body as each message type), and the
// metadata header decoder (a corrupted metadata file is untrusted too).
// Seeds: tests/fuzz/corpus/replicator_peer, written by replicator_peer_seeds.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "sanagent/replicator/metadata.h"
#include "sanagent/replicator/peer_protocol.h"

using namespace sanagent::replicator;
using namespace sanagent::replicator::peer;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::span<const std::uint8_t> in(data, size);
    if (in.size() >= kHeaderSize) {
        auto h = decode_header(in.first(kHeaderSize));
        if (h.ok() && h->length > kMaxBody) std::abort();
        auto body = in.subspan(kHeaderSize);
        if (h.ok()) (void)check_body(*h, body.first(std::min<std::size_t>(body.size(), h->length)));
    }
    (void)decode_hello(in);
    (void)decode_decision(in);
    (void)decode_write_prefix(in);
    auto r = decode_range(in);
    if (r.ok() && r->offset + r->length < r->offset) std::abort();
    (void)decode_ack(in);
    (void)decode_resync_done(in);
    (void)decode_digest(in);
    (void)decode_refuse(in);
    // The listener decodes AUTH before anyone is authenticated; whatever it
    // accepts encodes back to the same bytes, with a name within the bound.
    if (auto auth = decode_auth_challenge(in); auth.ok()) {
        if (auth->volume.size() > kMaxVolumeName) std::abort();
        auto again = encode_auth_challenge(*auth);
        if (again.size() != in.size() || !std::equal(again.begin(), again.end(), in.begin())) std::abort();
    }
    if (in.size() >= kMetaHeaderSize) (void)decode_metadata(in.first(kMetaHeaderSize));
    // Round trip: whatever decodes as a HELLO encodes back to the same bytes.
    if (auto hello = decode_hello(in); hello.ok()) {
        auto again = encode_hello(*hello);
        if (again.size() != in.size() || !std::equal(again.begin(), again.end(), in.begin())) std::abort();
    }
    return 0;
}
