#include "sanagent/replicator/nbd_handshake.h"

#include <boost/test/unit_test.hpp>

#include "sanagent/replicator/nbd_protocol.h"

using namespace sanagent::replicator::nbd;

namespace {

ExportInfo test_export() {
    ExportInfo e;
    e.name = "vol1";
    e.size = 1 << 30;
    e.transmission_flags = kFlagHasFlags | kFlagSendFlush | kFlagSendFua;
    return e;
}

// Splits a run of option replies into (type, payload) pairs.
std::vector<std::pair<std::uint32_t, std::vector<std::uint8_t>>> replies(const std::vector<std::uint8_t>& bytes) {
    std::vector<std::pair<std::uint32_t, std::vector<std::uint8_t>>> out;
    std::size_t pos = 0;
    while (pos + kOptionReplyHeaderSize <= bytes.size()) {
        auto h = decode_option_reply_header(std::span(bytes).subspan(pos, kOptionReplyHeaderSize));
        BOOST_TEST_REQUIRE(h.ok());
        pos += kOptionReplyHeaderSize;
        out.emplace_back(h->type, std::vector<std::uint8_t>(bytes.begin() + pos, bytes.begin() + pos + h->length));
        pos += h->length;
    }
    BOOST_TEST(pos == bytes.size());
    return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(nbd_handshake)

BOOST_AUTO_TEST_CASE(greeting_is_fixed_newstyle_without_zeroes) {
    auto g = encode_greeting();
    BOOST_TEST(g.size() == kGreetingSize);
    BOOST_TEST(std::string(g.begin(), g.begin() + 8) == "NBDMAGIC");
    BOOST_TEST(std::string(g.begin() + 8, g.begin() + 16) == "IHAVEOPT");
    BOOST_TEST(g[17] == (kFlagFixedNewstyle | kFlagNoZeroes));
}

BOOST_AUTO_TEST_CASE(client_flags) {
    std::uint8_t ok[4] = {0, 0, 0, 3};
    BOOST_TEST(decode_client_flags(ok).ok());
    std::uint8_t oldstyle[4] = {0, 0, 0, 0};
    BOOST_TEST(!decode_client_flags(oldstyle).ok());
    std::uint8_t unknown[4] = {0, 0, 1, 1};
    BOOST_TEST(!decode_client_flags(unknown).ok());
    std::uint8_t shortbuf[3] = {0, 0, 1};
    BOOST_TEST(!decode_client_flags(shortbuf).ok());
}

BOOST_AUTO_TEST_CASE(option_header_limits) {
    auto opt = encode_option(kOptGo, std::vector<std::uint8_t>(10));
    auto h = decode_option_header(std::span(opt).first(kOptionHeaderSize));
    BOOST_TEST_REQUIRE(h.ok());
    BOOST_TEST(h->option == kOptGo);
    BOOST_TEST(h->length == 10u);
    auto big = encode_option(kOptGo, std::vector<std::uint8_t>(kMaxOptionLength + 1));
    auto hb = decode_option_header(std::span(big).first(kOptionHeaderSize));
    BOOST_TEST(!hb.ok());
    BOOST_TEST(hb.error().code == EMSGSIZE);
    opt[0] ^= 1;
    BOOST_TEST(!decode_option_header(std::span(opt).first(kOptionHeaderSize)).ok());
}

BOOST_AUTO_TEST_CASE(go_answers_export_and_block_size_then_transmits) {
    auto data = encode_info_request({"vol1", {kInfoName}});
    auto o = negotiate(test_export(), true, kOptGo, data);
    BOOST_TEST((o.next == Next::Transmit));
    auto r = replies(o.reply);
    BOOST_TEST_REQUIRE(r.size() == 4u);
    BOOST_TEST(r[0].first == kRepInfo);
    BOOST_TEST_REQUIRE(r[0].second.size() == 12u);
    BOOST_TEST(r[0].second[1] == kInfoExport);
    BOOST_TEST(r[0].second[6] == 0x40);  // 1 GiB, big-endian
    BOOST_TEST(r[1].second[1] == kInfoBlockSize);
    BOOST_TEST(r[2].second[1] == kInfoName);
    BOOST_TEST(r[3].first == kRepAck);
}

BOOST_AUTO_TEST_CASE(info_continues_and_default_name_is_accepted) {
    auto o = negotiate(test_export(), true, kOptInfo, encode_info_request({"", {}}));
    BOOST_TEST((o.next == Next::Continue));
    BOOST_TEST(replies(o.reply).back().first == kRepAck);
}

BOOST_AUTO_TEST_CASE(unknown_export_and_malformed_go) {
    auto o = negotiate(test_export(), true, kOptGo, encode_info_request({"other", {}}));
    BOOST_TEST(replies(o.reply)[0].first == kRepErrUnknown);
    BOOST_TEST((o.next == Next::Continue));
    // Name length pointing past the data.
    std::vector<std::uint8_t> bad = {0, 0, 0, 200, 0, 0};
    auto m = negotiate(test_export(), true, kOptGo, bad);
    BOOST_TEST(replies(m.reply)[0].first == kRepErrInvalid);
    // Info count that does not match the bytes left.
    auto data = encode_info_request({"vol1", {kInfoName}});
    data.pop_back();
    BOOST_TEST(replies(negotiate(test_export(), true, kOptGo, data).reply)[0].first == kRepErrInvalid);
    BOOST_TEST(!decode_info_request({}).ok());
}

BOOST_AUTO_TEST_CASE(list_abort_and_unsupported) {
    auto l = negotiate(test_export(), true, kOptList, {});
    auto r = replies(l.reply);
    BOOST_TEST_REQUIRE(r.size() == 2u);
    BOOST_TEST(r[0].first == kRepServer);
    BOOST_TEST(r[0].second.size() == 8u);  // u32 length + "vol1"
    BOOST_TEST(r[1].first == kRepAck);
    std::uint8_t junk[1] = {1};
    BOOST_TEST(replies(negotiate(test_export(), true, kOptList, junk).reply)[0].first == kRepErrInvalid);
    auto a = negotiate(test_export(), true, kOptAbort, {});
    BOOST_TEST((a.next == Next::Close));
    auto s = negotiate(test_export(), true, kOptStructuredReply, {});
    BOOST_TEST(replies(s.reply)[0].first == kRepErrUnsup);
    BOOST_TEST(replies(negotiate(test_export(), true, 0xdead, {}).reply)[0].first == kRepErrUnsup);
}

BOOST_AUTO_TEST_CASE(starttls_by_mode) {
    auto go = encode_info_request({"vol1", {}});
    // NOTLS: STARTTLS is unsupported, everything else as usual.
    BOOST_TEST(replies(negotiate(test_export(), true, kOptStartTls, {}, Tls::Off).reply)[0].first == kRepErrUnsup);
    // FORCEDTLS before TLS: STARTTLS is acknowledged and TLS comes next ...
    auto st = negotiate(test_export(), true, kOptStartTls, {}, Tls::Required);
    BOOST_TEST(replies(st.reply)[0].first == kRepAck);
    BOOST_TEST((st.next == Next::StartTls));
    std::uint8_t junk[1] = {0};
    BOOST_TEST(replies(negotiate(test_export(), true, kOptStartTls, junk, Tls::Required).reply)[0].first ==
               kRepErrInvalid);
    // ... every other option but ABORT is refused with TLS_REQD ...
    for (auto option : {kOptGo, kOptInfo, kOptList, kOptStructuredReply}) {
        auto o = negotiate(test_export(), true, option, option == kOptList ? std::vector<std::uint8_t>{} : go,
                           Tls::Required);
        BOOST_TEST(replies(o.reply)[0].first == kRepErrTlsReqd);
        BOOST_TEST((o.next == Next::Continue));
    }
    BOOST_TEST((negotiate(test_export(), true, kOptAbort, {}, Tls::Required).next == Next::Close));
    // ... and EXPORT_NAME, which cannot be refused, ends the session.
    std::string name = "vol1";
    std::span<const std::uint8_t> data(reinterpret_cast<const std::uint8_t*>(name.data()), name.size());
    auto e = negotiate(test_export(), true, kOptExportName, data, Tls::Required);
    BOOST_TEST((e.next == Next::Close));
    BOOST_TEST(e.reply.empty());
    // With TLS up: a second STARTTLS is invalid, GO goes through.
    BOOST_TEST(replies(negotiate(test_export(), true, kOptStartTls, {}, Tls::Active).reply)[0].first ==
               kRepErrInvalid);
    BOOST_TEST((negotiate(test_export(), true, kOptGo, go, Tls::Active).next == Next::Transmit));
}

BOOST_AUTO_TEST_CASE(export_name_old_style) {
    std::string name = "vol1";
    std::span<const std::uint8_t> data(reinterpret_cast<const std::uint8_t*>(name.data()), name.size());
    auto with_zeroes = negotiate(test_export(), false, kOptExportName, data);
    BOOST_TEST(with_zeroes.reply.size() == 8u + 2u + 124u);
    BOOST_TEST((with_zeroes.next == Next::Transmit));
    BOOST_TEST(negotiate(test_export(), true, kOptExportName, data).reply.size() == 10u);
    std::string other = "nope";
    auto bad = negotiate(test_export(), true, kOptExportName,
                         {reinterpret_cast<const std::uint8_t*>(other.data()), other.size()});
    BOOST_TEST((bad.next == Next::Close));
}

BOOST_AUTO_TEST_CASE(request_checks) {
    const std::uint64_t size = 1 << 20;
    auto verdict = [&](Request r) { return check_request(r, size, 1 << 16); };
    BOOST_TEST((verdict({0, CommandType::Read, 1, 0, 4096}).verdict == Verdict::Serve));
    BOOST_TEST((verdict({0, CommandType::Read, 1, size - 512, 4096}).verdict == Verdict::ReplyError));
    BOOST_TEST(verdict({0, CommandType::Read, 1, size - 512, 4096}).error == kErrInval);
    BOOST_TEST((verdict({0, CommandType::Write, 1, ~0ull, 4096}).verdict == Verdict::ReplyError));
    BOOST_TEST((verdict({0, CommandType::Write, 1, 0, (1 << 16) + 1}).verdict == Verdict::Close));
    BOOST_TEST((verdict({kCmdFlagNoHole, CommandType::Write, 1, 0, 512}).verdict == Verdict::ReplyError));
    BOOST_TEST((verdict({kCmdFlagNoHole, CommandType::WriteZeroes, 1, 0, 1 << 20}).verdict == Verdict::Serve));
    BOOST_TEST((verdict({0, CommandType::Flush, 1, 0, 0}).verdict == Verdict::Serve));
    BOOST_TEST((verdict({0, CommandType::Flush, 1, 4096, 0}).verdict == Verdict::ReplyError));
    BOOST_TEST((verdict({0, static_cast<CommandType>(99), 1, 0, 0}).verdict == Verdict::ReplyError));
    BOOST_TEST((verdict({0, CommandType::Trim, 1, 0, 0}).verdict == Verdict::ReplyError));
    // A READ too large is refused and the stream goes on: it carries no payload.
    BOOST_TEST((verdict({0, CommandType::Read, 1, 0, (1 << 16) + 1}).verdict == Verdict::ReplyError));
    BOOST_TEST(verdict({0, CommandType::Read, 1, 0, (1 << 16) + 1}).error == kErrInval);
    // FUA is accepted on every command, as the spec requires.
    BOOST_TEST((verdict({kCmdFlagFua, CommandType::Read, 1, 0, 4096}).verdict == Verdict::Serve));
    BOOST_TEST((verdict({kCmdFlagFua, CommandType::Flush, 1, 0, 0}).verdict == Verdict::Serve));
    BOOST_TEST((verdict({kCmdFlagFua, CommandType::Trim, 1, 0, 4096}).verdict == Verdict::Serve));
}

BOOST_AUTO_TEST_SUITE_END()
