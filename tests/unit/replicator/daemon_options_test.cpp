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
        // What one resync copy carries, and what the metadata file accepts.
        {"[volume.v]\ngranularity = \"64M\"\n", "v", ":2: [volume.v] granularity: expected a size"},
        {"[volume.v]\ngranularity = \"96K\"\n", "v", ":2: [volume.v] granularity: expected a power of two"},
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

BOOST_AUTO_TEST_CASE(node_config_reads_every_volume_with_the_node_defaults) {
    TempFile f(R"([sanrepd]
node = "node-b"
threads = 8
listen = "10.0.0.2:7789"
nbd_tls_psk = "/etc/sanagent/nbd.psk"

[volume.vol1]
role = "secondary"
replica = "/dev/sanvg/vol1"

[volume.vol2]
role = "secondary"
replica = "/dev/sanvg/vol2"
listen = "10.0.1.2:7790"

[volume.vol3]
role = "primary"
replica = "/srv/vol3.img"
[volume.vol3.peer]
address = "10.0.0.1:7789"
)");
    auto all = load_node_config(f.path, DaemonOptions{});
    BOOST_TEST_REQUIRE(all.ok(), (all.ok() ? "" : all.error().message));
    BOOST_TEST_REQUIRE(all->size() == 3u);
    const auto &v1 = (*all)[0], &v2 = (*all)[1], &v3 = (*all)[2];
    BOOST_TEST(v1.volume == "vol1");
    BOOST_TEST(v1.node == "node-b");
    BOOST_TEST(v1.threads == 8u);
    BOOST_TEST(v1.listen == "10.0.0.2:7789");  // the node's default
    BOOST_TEST(v2.listen == "10.0.1.2:7790");  // its own
    BOOST_TEST(v1.meta == "/dev/sanvg/vol1.meta");
    BOOST_TEST(v1.control == "/run/sanrepd/vol1.ctl");
    BOOST_TEST(v2.control == "/run/sanrepd/vol2.ctl");
    BOOST_TEST(v3.role == "primary");
    BOOST_TEST(v3.peer == "10.0.0.1:7789");
    BOOST_TEST(v3.nbd_socket == "/run/sanrepd/vol3.nbd");
    BOOST_TEST(v3.nbd_tls_psk == "/etc/sanagent/nbd.psk");  // the node's, for a volume with nbd_tcp
}

BOOST_AUTO_TEST_CASE(node_config_errors_name_file_line_and_key) {
    struct Case {
        std::string text, expect;
    };
    const Case cases[] = {
        {"[volume.a]\nreplica = \"/x\"\nnbd_socket = \"/s\"\n[volume.b]\nreplica = \"/y\"\nnbd_socket = \"/s\"\n",
         ":6: [volume.b] nbd_socket: /s is also [volume.a]'s (line 3)"},
        // Secondaries' sockets too: either may be promoted.
        {"[sanrepd]\nlisten = \"127.0.0.1:7789\"\n[volume.a]\nrole = \"secondary\"\nreplica = \"/x\"\nnbd_socket = "
         "\"/s\"\n[volume.b]\nrole = \"secondary\"\nreplica = \"/y\"\nnbd_socket = \"/s\"\n",
         ":10: [volume.b] nbd_socket: /s is also [volume.a]'s (line 6)"},
        {"[volume.a]\nreplica = \"/x\"\n[volume.b]\nreplica = \"/x\"\n", ":4: [volume.b] replica: /x is also"},
        {"[volume.a]\nreplica = \"/x\"\ncontrol = \"/c\"\n[volume.b]\nreplica = \"/y\"\ncontrol = \"/c\"\n",
         ":6: [volume.b] control: /c is also"},
        {"[volume.a]\nrole = \"secondary\"\nreplica = \"/x\"\n", ":1: [volume.a] listen: a secondary needs"},
        {"[volume.a]\nrole = \"primary\"\n", ":1: [volume.a] replica: missing"},
        {"[volume.\"../etc\"]\nreplica = \"/x\"\n", "[volume.../etc] volume name '../etc'"},
        {"[sanrepd]\nnode = \"n\"\n", "no [volume.NAME] table"},
        {"[volume.a]\nreplica = \"/x\"\n[volume.b]\nreplcia = \"/y\"\n", ":4: [volume.b] replcia: unknown key"},
        {"[sanrepd]\nnbd_tls_psk = \"/k\"\n[volume.a]\nreplica = \"/x\"\nnbd_tls_dir = \"/d\"\n",
         ":5: [volume.a] nbd_tls_dir: give nbd_tls_psk or nbd_tls_dir, not both"},
        // Addresses and the node name are checked before anything opens,
        // each at its own line: in [sanrepd], the volume, or its peer table.
        {"[sanrepd]\nlisten = \"0.0.0.0\"\n[volume.a]\nrole = \"secondary\"\nreplica = \"/x\"\n",
         ":2: [volume.a] listen: address 0.0.0.0: expected HOST:PORT"},
        {"[volume.a]\nreplica = \"/x\"\n[volume.a.peer]\naddress = \"node-b:7000\"\n",
         ":4: [volume.a] address: address node-b:7000: not a numeric IPv4 address"},
        {"[volume.a]\nreplica = \"/x\"\nnbd_tcp = \"[::1]:99999\"\n", ":3: [volume.a] nbd_tcp: address [::1]:99999: bad port"},
        {"[sanrepd]\nnode = \"node a\"\n[volume.a]\nreplica = \"/x\"\n", ":2: [volume.a] node: 'node a'"},
        {"[volume.a]\nreplica = \"/x\"\nnbd_tcp = \"127.0.0.1:10809\"\n[volume.b]\nreplica = \"/y\"\nnbd_tcp = "
         "\"127.0.0.1:10809\"\n",
         ":6: [volume.b] nbd_tcp: 127.0.0.1:10809 is also [volume.a]'s (line 3)"},
    };
    for (const auto& c : cases) {
        TempFile f(c.text);
        auto all = load_node_config(f.path, DaemonOptions{});
        BOOST_TEST_REQUIRE(!all.ok(), c.text);
        BOOST_TEST(all.error().message.find(f.path) == 0u, all.error().message);
        BOOST_TEST(all.error().message.find(c.expect) != std::string::npos, all.error().message);
    }
}
