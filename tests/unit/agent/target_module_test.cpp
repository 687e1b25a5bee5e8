// The target module against a temporary tree shaped like configfs: naming,
// validation, ownership (foreign, orphaned), idempotence, secrets never shown.
#include "sanagent/agent/target_module.h"

#include <sys/stat.h>

#include <boost/test/unit_test.hpp>

#include "sanagent/agent/agent.h"
#include "test_dir.h"

using namespace sanagent::agent;
using sanagent::agent::test::TempDir;
namespace fs = std::filesystem;

namespace {

constexpr const char* kSecret = "xs01-secret-0123";

struct TargetAgent {
    TempDir dir;
    std::shared_ptr<sanagent::configfs::ConfigfsTree> tree;
    std::unique_ptr<Agent> agent;

    TargetAgent() {
        tree = std::make_shared<sanagent::configfs::ConfigfsTree>(
            dir.root / "target", sanagent::configfs::ConfigfsTree::Backing::PlainDirectory);
        dir.write("target/version", "Target Engine Core ConfigFS Infrastructure v5.0\n");
        fs::create_directories(dir.root / "target/core");
        secret("xs01", kSecret);
    }
    std::string secret(const std::string& name, const std::string& value) {
        auto path = dir.write("secrets/" + name, value + "\n");
        ::chmod(path.c_str(), 0600);
        return path;
    }
    std::string base(const std::string& volumes) {
        return "[node]\nname = \"n1\"\nroles = [\"storage\"]\n[group]\nname = \"g\"\niqn_prefix = "
               "\"iqn.2026-11.org.example\"\n[server.xs01]\niqn = \"iqn.2026-11.org.example:xs01\"\nchap_user = "
               "\"xs01\"\nchap_secret_file = \"" +
               (dir.root / "secrets/xs01").string() +
               "\"\n[server.xs02]\niqn = \"iqn.2026-11.org.example:xs02\"\nchap_user = \"xs02\"\nchap_secret_file = "
               "\"" +
               (dir.root / "secrets/xs01").string() + "\"\n" + volumes;
    }
    std::string volume(const std::string& name, const std::string& servers = "\"xs01\"") {
        return "[volume." + name + "]\nsize = \"64M\"\nbackstore = \"fileio\"\ndevice = \"" +
               (dir.root / (name + ".img")).string() + "\"\nservers = [" + servers + "]\nportals = [\"127.0.0.1\"]\n";
    }
    bool configure(const std::string& text, Diagnostics& diagnostics) {
        dir.write("conf.d/10-test.conf", text);
        AgentOptions o;
        o.load.config_dir = dir.root;
        o.load.secret_owner = ::getuid();
        o.state_dir = dir.root / "state";
        auto t = tree;
        o.modules = [t](const Config&) {
            std::vector<std::unique_ptr<Module>> modules;
            modules.push_back(std::make_unique<TargetModule>(t));
            return modules;
        };
        agent = std::make_unique<Agent>(o);
        return agent->reload(diagnostics);
    }
    void configure(const std::string& text) {
        Diagnostics diagnostics;
        BOOST_TEST_REQUIRE(configure(text, diagnostics), diagnostics.text());
    }
    std::optional<ObjectStatus> status_of(const std::string& object) {
        for (auto& s : agent->status())
            if (s.object == object) return s;
        return std::nullopt;
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(target_module)

BOOST_AUTO_TEST_CASE(iqns_follow_rfc_3720) {
    BOOST_TEST(is_valid_iqn("iqn.2026-11.org.example:hp-boulder:xpsp2-01"));
    BOOST_TEST(is_valid_iqn("iqn.2001-04.com.example"));
    BOOST_TEST(!is_valid_iqn("iqn.2026-13.org.example:v"));                         // month 13
    BOOST_TEST(!is_valid_iqn("iqn.2026-11.Org.example:v"));                         // upper case
    BOOST_TEST(!is_valid_iqn("iqn.2026-11.org.example:"));                          // empty suffix
    BOOST_TEST(!is_valid_iqn("iqn.2026-11.org..example:v"));                        // empty label
    BOOST_TEST(!is_valid_iqn("iqn.2026-11.org.example:a/b"));                       // never a path
    BOOST_TEST(!is_valid_iqn("iqn.2026-11.org.example:" + std::string(200, 'a')));  // > 223 bytes
    BOOST_TEST(is_valid_initiator_name("eui.02004567a425678d"));
    BOOST_TEST(is_valid_initiator_name("naa.52004567ba64678d"));
    BOOST_TEST(!is_valid_initiator_name("eui.0200"));
}

BOOST_AUTO_TEST_CASE(portals_are_canonical_and_serials_stable) {
    BOOST_TEST(*normalize_portal("10.0.10.11") == "10.0.10.11:3260");
    BOOST_TEST(*normalize_portal("10.0.10.11:3261") == "10.0.10.11:3261");
    BOOST_TEST(*normalize_portal("[FD00:0::1]") == "[fd00::1]:3260");
    BOOST_TEST(!normalize_portal("fd00::1:3260").ok());
    BOOST_TEST(!normalize_portal("10.0.10.11:0").ok());
    BOOST_TEST(!normalize_portal("host.example:3260").ok());
    const auto serial = volume_serial("hp-boulder", "xpsp2-01");
    BOOST_TEST(serial.size() == 32u);
    BOOST_TEST(serial == volume_serial("hp-boulder", "xpsp2-01"));
    BOOST_TEST(serial.substr(0, 25) != volume_serial("hp-boulder", "xpsp2-02").substr(0, 25));
}

BOOST_FIXTURE_TEST_CASE(bad_input_is_reported_all_at_once_and_nothing_applies, TargetAgent) {
    secret("short", "tiny-one");
    const std::string bad = base(
        "[server.plain]\niqn = \"iqn.2026-11.org.example:plain\"\n"
        "[server.weak]\niqn = \"IQN.bad\"\nchap_user = \"weak\"\nchap_secret_file = \"" +
        (dir.root / "secrets/short").string() +
        "\"\n"
        "[volume.v1]\nsize = \"1G\"\ndevice = \"/dev/null\"\niqn = \"iqn.2026-11.Example:v1\"\n"
        "[volume.v2]\nsize = \"1G\"\ndevice = \"/dev/null\"\nportals = [\"10.0.0.1\", \"10.0.0.1:3260\"]\n"
        "servers = [\"xs01\", \"plain\"]\n");
    Diagnostics diagnostics;
    BOOST_TEST(!configure(bad, diagnostics));
    const std::string text = diagnostics.text();
    const std::string f = (dir.root / "conf.d/10-test.conf").string();
    for (const std::string& want :
         std::vector<std::string>{f + ":18: [server.weak] iqn: expected an initiator name",
                                  f + ":20: [server.weak] chap_secret_file: expected a secret of 12 to 255 bytes",
                                  f + ":24: [volume.v1] iqn: expected iqn.yyyy-mm.reversed.domain",
                                  f + ":23: [volume.v1] device: expected an existing block device: /dev/null",
                                  f + ":28: [volume.v2] portals: duplicate portal 10.0.0.1:3260",
                                  f + ":29: [volume.v2] servers: expected all of the volume's servers with CHAP"})
        BOOST_TEST(text.find(want) != std::string::npos, "missing: " << want << "\ngot:\n" << text);
    BOOST_TEST(text.find("tiny-one") == std::string::npos);  // the secret itself is never shown
    BOOST_TEST(!agent->loaded());
}

BOOST_FIXTURE_TEST_CASE(volumes_become_targets_once_and_secrets_stay_hidden, TargetAgent) {
    configure(base(volume("vol1") + volume("vol2", "\"xs01\", \"xs02\"")));
    auto plan = agent->plan();
    BOOST_TEST_REQUIRE(!plan.steps.empty());
    const std::string text = to_text(plan.steps);
    BOOST_TEST(text.find(kSecret) == std::string::npos);
    BOOST_TEST(text.find("(secret)") != std::string::npos);
    BOOST_TEST(text.find("iscsi/iqn.2026-11.org.example:g:vol1/tpgt_1/np/127.0.0.1:3260") != std::string::npos);
    auto first = agent->apply();
    BOOST_TEST_REQUIRE((first.outcome == Outcome::ok), to_text(first));
    BOOST_TEST(*tree->read_attr("core/fileio_57/vol1/wwn/vpd_unit_serial") == volume_serial("g", "vol1"));
    BOOST_TEST(*tree->read_attr("iscsi/iqn.2026-11.org.example:g:vol2/tpgt_1/acls/iqn.2026-11.org.example:xs02/auth/"
                                "password") == kSecret);
    BOOST_TEST(*tree->read_attr("iscsi/iqn.2026-11.org.example:g:vol1/tpgt_1/attrib/demo_mode_discovery") == "0");

    const auto mutations = tree->mutations();
    auto second = agent->apply();
    BOOST_TEST(second.changes == 0u);
    BOOST_TEST(tree->mutations() == mutations);
    BOOST_TEST((status_of("target/vol1")->health == Health::ok));

    // Unassigning xs02 from vol2 touches only vol2's ACL of xs02.
    configure(base(volume("vol1") + volume("vol2")));
    auto third = agent->plan();
    BOOST_TEST_REQUIRE(!third.steps.empty());
    for (const auto& s : third.steps) {
        BOOST_TEST(s.object == "target/vol2");
        BOOST_TEST(s.action.find("xs02") != std::string::npos);
    }

    // A volume taken out of the config: its target stays, orphaned.
    configure(base(volume("vol1")));
    BOOST_TEST(agent->plan().steps.empty());
    BOOST_TEST(tree->exists("iscsi/iqn.2026-11.org.example:g:vol2"));
    BOOST_TEST((status_of("target/vol2")->health == Health::orphaned));
}

// The no-change read (LioDepth::plan) stops at an ACL's lun_0/map; a server
// taken off a volume whose ACL someone gave a second LUN by hand must still
// be removed whole, not fail on a directory that is not empty.
BOOST_FIXTURE_TEST_CASE(an_acl_with_a_lun_mapped_by_hand_is_removed_whole, TargetAgent) {
    configure(base(volume("vol1", "\"xs01\", \"xs02\"")));
    BOOST_TEST_REQUIRE((agent->apply().outcome == Outcome::ok));
    const std::string tpg = "iscsi/iqn.2026-11.org.example:g:vol1/tpgt_1";
    const fs::path acl = dir.root / "target" / tpg / "acls/iqn.2026-11.org.example:xs02";
    fs::create_directories(acl / "lun_1");
    fs::create_symlink(dir.root / "target" / tpg / "lun/lun_0", acl / "lun_1/by-hand");

    configure(base(volume("vol1")));
    // This fake's rmdir empties a directory as configfs does its default
    // groups, so the plan itself must name the hand-made mapping first.
    const std::string planned = to_text(agent->plan().steps);
    BOOST_TEST(planned.find("xs02/lun_1/by-hand") != std::string::npos, planned);
    auto report = agent->apply();
    BOOST_TEST((report.outcome == Outcome::ok), to_text(report));
    BOOST_TEST(!fs::exists(acl));
    BOOST_TEST(fs::exists(dir.root / "target" / tpg / "acls/iqn.2026-11.org.example:xs01/lun_0/map"));
}

BOOST_FIXTURE_TEST_CASE(a_target_made_by_hand_with_the_same_iqn_is_foreign, TargetAgent) {
    fs::create_directories(dir.root / "target/core/fileio_0/disk0");
    fs::create_directories(dir.root / "target/iscsi/iqn.2026-11.org.example:g:vol1/tpgt_1/lun/lun_0");
    fs::create_symlink(dir.root / "target/core/fileio_0/disk0",
                       dir.root / "target/iscsi/iqn.2026-11.org.example:g:vol1/tpgt_1/lun/lun_0/disk0");
    configure(base(volume("vol1") + volume("vol2")));
    auto plan = agent->plan();
    for (const auto& s : plan.steps) BOOST_TEST(s.object != "target/vol1");
    auto report = agent->apply();
    BOOST_TEST((report.outcome == Outcome::ok), to_text(report));
    BOOST_TEST(!tree->exists("iscsi/iqn.2026-11.org.example:g:vol1/tpgt_1/np"));
    BOOST_TEST(!tree->exists("core/fileio_57/vol1"));
    BOOST_TEST((status_of("target/vol1")->health == Health::foreign));
    BOOST_TEST((status_of("target/vol2")->health == Health::ok));
}

BOOST_FIXTURE_TEST_CASE(discovery_and_mutual_chap, TargetAgent) {
    const auto disc = secret("disc", "discovery-secret-1");
    const auto mutual = secret("mutual", "target-answers-0123");
    const std::string text = base(volume("vol1"));
    dir.write("conf.d/20-chap.conf", "[server.xs01]\nmutual_chap_user = \"tgt\"\nmutual_chap_secret_file = \"" +
                                         mutual +
                                         "\"\n[group]\ndiscovery_chap_user = \"disc\"\n"
                                         "discovery_chap_secret_file = \"" +
                                         disc + "\"\n");
    configure(text);
    auto report = agent->apply();
    BOOST_TEST_REQUIRE((report.outcome == Outcome::ok), to_text(report));
    BOOST_TEST(*tree->read_attr("iscsi/discovery_auth/enforce_discovery_auth") == "1");
    BOOST_TEST(*tree->read_attr("iscsi/discovery_auth/userid") == "disc");
    const std::string acl = "iscsi/iqn.2026-11.org.example:g:vol1/tpgt_1/acls/iqn.2026-11.org.example:xs01/auth/";
    BOOST_TEST(*tree->read_attr(acl + "userid_mutual") == "tgt");
    BOOST_TEST(*tree->read_attr(acl + "password_mutual") == "target-answers-0123");
    BOOST_TEST(agent->apply().changes == 0u);
    BOOST_TEST((status_of(TargetModule::kDiscoveryObject)->health == Health::ok));

    // The same secret both ways is refused (RFC 3720 8.2.1).
    secret("mutual", kSecret);
    Diagnostics diagnostics;
    BOOST_TEST(!configure(text, diagnostics));
    BOOST_TEST(diagnostics.text().find("expected a secret different from chap_secret_file's") != std::string::npos);
}

// RFC 3720 asks for at least 96 bits; LIO keeps at most 255 bytes; some
// initiators stop at 16: 12..255 is accepted, above 16 with a warning in
// status (lengths only, never the secret), outside it a clear error.
BOOST_FIXTURE_TEST_CASE(chap_secret_lengths, TargetAgent) {
    const std::string long_ok(40, 'k');
    secret("xs01", long_ok);
    configure(base(volume("vol1")));
    BOOST_TEST_REQUIRE((agent->apply().outcome == Outcome::ok));
    auto s = status_of(TargetModule::object_of("vol1"));
    BOOST_TEST_REQUIRE(s.has_value());
    BOOST_TEST((s->health == Health::ok));
    BOOST_TEST(s->detail.find("holds 40 bytes; some initiators accept at most 16") != std::string::npos, s->detail);
    BOOST_TEST(s->detail.find(long_ok) == std::string::npos);

    secret("xs01", std::string(12, 'm'));  // the shortest accepted, no warning
    configure(base(volume("vol1")));
    BOOST_TEST(status_of(TargetModule::object_of("vol1"))->detail.find("at most 16") == std::string::npos);

    const std::string too_long(256, 'x');
    secret("xs01", too_long);
    Diagnostics diagnostics;
    BOOST_TEST(!configure(base(volume("vol1")), diagnostics));
    BOOST_TEST(diagnostics.text().find("expected a secret of 12 to 255 bytes") != std::string::npos,
               diagnostics.text());
    BOOST_TEST(diagnostics.text().find("got 256 bytes") != std::string::npos);
    BOOST_TEST(diagnostics.text().find(too_long) == std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
