#define BOOST_TEST_MODULE replicator
#include "sanagent/replicator/nbd_protocol.h"

#include <boost/test/unit_test.hpp>
#include <cerrno>

using namespace sanagent::replicator::nbd;

BOOST_AUTO_TEST_CASE(request_round_trips) {
    Request r{kCmdFlagFua, CommandType::Write, 0x0102030405060708ull, 1ull << 40, 65536};
    auto bytes = encode_request(r);
    BOOST_TEST(bytes[0] == 0x25);  // magic, big-endian first
    BOOST_TEST(bytes[3] == 0x13);
    auto back = decode_request(bytes);
    BOOST_TEST_REQUIRE(back.ok());
    BOOST_TEST(back->flags == kCmdFlagFua);
    BOOST_TEST((back->type == CommandType::Write));
    BOOST_TEST(back->handle == r.handle);
    BOOST_TEST(back->offset == r.offset);
    BOOST_TEST(back->length == r.length);
}

BOOST_AUTO_TEST_CASE(bad_magic_is_refused) {
    std::array<std::uint8_t, kRequestSize> bytes{};
    auto r = decode_request(bytes);
    BOOST_TEST(!r.ok());
}

BOOST_AUTO_TEST_CASE(simple_reply_layout) {
    auto reply = encode_simple_reply(5, 0xabcdefull);
    BOOST_TEST(reply[0] == 0x67);
    BOOST_TEST(reply[7] == 5);
    BOOST_TEST(reply[15] == 0xef);
}

// Host errors map onto the seven the spec defines: EDQUOT and EFBIG as
// ENOSPC (the spec says so), EOVERFLOW (meant for DF, not offered) and
// anything unlisted as EIO.
BOOST_AUTO_TEST_CASE(host_errors_map_onto_the_specs_values) {
    BOOST_TEST(wire_error(0) == 0u);
    BOOST_TEST(wire_error(EROFS) == kErrPerm);
    BOOST_TEST(wire_error(EINVAL) == kErrInval);
    BOOST_TEST(wire_error(ENOSPC) == kErrNoSpc);
    BOOST_TEST(wire_error(EDQUOT) == kErrNoSpc);
    BOOST_TEST(wire_error(EFBIG) == kErrNoSpc);
    BOOST_TEST(wire_error(EOVERFLOW) == kErrIo);
    BOOST_TEST(wire_error(ENODEV) == kErrIo);
}
