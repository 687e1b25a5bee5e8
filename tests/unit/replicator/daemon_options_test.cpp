// sanrepd's TOML file: values land in the options, flags' defaults stay where
// a key is absent, and every mistake is refused with file:line, table and key,
// leaving the options untouched.
#include "sanagent/replicator/daemon_options.h"

#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cstdio>
#include <fstream>
#include <string>

using namespace sanagent::replicator;

namespace {

struct TempFile {
    std::string path;
    explicit TempFile(const std::string& text) {
        char tmpl[] = "/tmp/sanrepd-conf-XXXXXX";
        int fd = ::mkstemp(tmpl);
        ::close(fd);
        path = tmpl;
        std::ofstream(path) << text;
    }
    ~TempFile() { std::remove(path.c_str()); }
};

const char* kGood = R"([sanrepd]
node = "node-a"
threads = 8

[volume.vol1]
role = "primary"
replica = "/dev/sanvg/vol1"
granularity = "128K"
nbd_socket = "/run/sanrepd/vol1.nbd"
ack_timeout_ms = 3000

[volume.vol1.peer]
address = "10.0.0.2:7789"
mode = "async"
max_lag = "256M"

[volume.other]
role = "secondary"
replica = "/dev/sanvg/other"
listen = "10.0.0.1:7790"
)";

}  // namespace

BOOST_AUTO_TEST_CASE(daemon_config_reads_its_volume) {
    TempFile f(kGood);
    DaemonOptions o;
    o.control = "/from/a/flag";
    auto st = load_daemon_config(f.path, "vol1", o);
    BOOST_TEST_REQUIRE(st.ok(), (st.ok() ? "" : st.error().message));
    BOOST_TEST(o.volume == "vol1");
    BOOST_TEST(o.node == "node-a");
    BOOST_TEST(o.threads == 8u);
    BOOST_TEST(o.role == "primary");
    BOOST_TEST(o.replica == "/dev/sanvg/vol1");
    BOOST_TEST(o.granularity == 128u * 1024);
    BOOST_TEST(o.ack_timeout_ms == 3000);
    BOOST_TEST(o.peer == "10.0.0.2:7789");
    BOOST_TEST(o.async);
    BOOST_TEST(o.max_lag == 256ull << 20);
    BOOST_TEST(o.control == "/from/a/flag");  // absent key: left alone
    DaemonOptions other;
    BOOST_TEST_REQUIRE(load_daemon_config(f.path, "other", other).ok());
    BOOST_TEST(other.role == "secondary");
    BOOST_TEST(other.listen == "10.0.0.1:7790");
    BOOST_TEST(other.peer.empty());
}

BOOST_AUTO_TEST_CASE(daemon_config_errors_name_file_line_and_key) {
    struct Case {
        std::string text, volume, expect;
    };
    const Case cases[] = {
        {"[volume.v]\nrole = \"primary\"\nreplcia = \"/x\"\n", "v", ":3: [volume.v] replcia: unknown key"},
        {"[volume.v]\n[volume.v.peer]\nmode = \"fast\"\n", "v",
         ":3: [volume.v.peer] mode: expected \"sync\" or \"async\""},
        {"[volume.v]\ngranularity = \"64Q\"\n", "v", ":2: [volume.v] granularity: expected a size"},
        {"[volume.v]\nack_timeout_ms = \"5s\"\n", "v", ":2: [volume.v] ack_timeout_ms: expected an integer"},
        {"[volume.v]\nrole = \"primary\"\n", "w", "no [volume.w] table"},
        {"[volumes.v]\n", "v", "unknown table"},
        {"[volume.v\n", "v", ":1: "},
    };
    for (const auto& c : cases) {
        TempFile f(c.text);
        DaemonOptions o;
        o.role = "secondary";
        auto st = load_daemon_config(f.path, c.volume, o);
        BOOST_TEST_REQUIRE(!st.ok(), c.text);
        BOOST_TEST(st.error().message.find(f.path) == 0u, st.error().message);
        BOOST_TEST(st.error().message.find(c.expect) != std::string::npos, st.error().message);
        BOOST_TEST(o.role == "secondary");  // nothing half-applied
    }
}

BOOST_AUTO_TEST_CASE(sizes) {
    std::uint64_t v = 0;
    BOOST_TEST((parse_size("64K", v) && v == 65536u));
    BOOST_TEST((parse_size("10G", v) && v == 10ull << 30));
    BOOST_TEST((parse_size("4096", v) && v == 4096u));
    BOOST_TEST(!parse_size("", v));
    BOOST_TEST(!parse_size("-1", v));
    BOOST_TEST(!parse_size("1Q", v));
    BOOST_TEST(!parse_size("99999999999999T", v));
}
