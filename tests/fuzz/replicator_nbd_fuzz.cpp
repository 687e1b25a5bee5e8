// libFuzzer target: the NBD server's view of untrusted client bytes — client
// flags, option headers, every option's payload through negotiate() in each
// TLS mode, and transmission request headers through decode + check. Nothing
// may crash, read out of bounds or return an outcome that breaks framing.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "sanagent/replicator/nbd_handshake.h"
#include "sanagent/replicator/nbd_protocol.h"

using namespace sanagent::replicator::nbd;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::span<const std::uint8_t> in(data, size);
    ExportInfo exp;
    exp.name = "vol";
    exp.size = 1ull << 30;
    if (in.size() >= 4) (void)decode_client_flags(in.first(4));
    if (in.size() >= kOptionHeaderSize) {
        auto h = decode_option_header(in.first(kOptionHeaderSize));
        auto rest = in.subspan(kOptionHeaderSize);
        if (h.ok()) {
            auto payload = rest.first(std::min<std::size_t>(rest.size(), h->length));
            // The TLS mode from a byte the option header does not use.
            const auto tls = static_cast<Tls>(size % 3);
            auto o = negotiate(exp, true, h->option, payload, tls);
            if (tls == Tls::Required && h->option != kOptStartTls && h->option != kOptAbort &&
                o.next != Next::Continue && o.next != Next::Close)
                std::abort();  // nothing but STARTTLS gets anywhere before TLS
            // Every answer but EXPORT_NAME's is a run of well-framed replies.
            if (h->option != kOptExportName) {
                std::size_t pos = 0;
                while (pos < o.reply.size()) {
                    auto r = decode_option_reply_header(std::span(o.reply).subspan(pos, kOptionReplyHeaderSize));
                    if (!r.ok()) std::abort();
                    pos += kOptionReplyHeaderSize + r->length;
                }
                if (pos != o.reply.size()) std::abort();
            }
        }
        (void)decode_info_request(rest);
    }
    if (in.size() >= kRequestSize) {
        auto r = decode_request(in.first<kRequestSize>());
        if (r.ok()) {
            auto c = check_request(*r, exp.size, exp.max_block);
            if (c.verdict == Verdict::Serve && r->type != CommandType::Flush && r->type != CommandType::Disconnect &&
                (r->offset + r->length > exp.size || r->length == 0))
                std::abort();  // a served request must lie inside the export
        }
    }
    return 0;
}
