// The host modules' plans from what lvm and iscsiadm report: nothing to do
// when the SR is attached and the VDIs are as configured, login + create on a
// fresh host, grow on a bigger size, nothing for a detached SR, config checks.
#include "sanagent/agent/sr_modules.h"

#include <boost/test/unit_test.hpp>
#include <fstream>

#include "test_dir.h"

using namespace sanagent;
using namespace sanagent::agent;

namespace {

constexpr const char* kVg = "VG_XenStorage-2b4c6f0e-7d9a-4e1b-8c3f-0a1b2c3d4e5f";
constexpr const char* kTarget = "iqn.2026-11.org.example:g:vm1";

// Answers the report commands and `iscsiadm -m session` from its fields;
// records anything else.
class FakeHost : public CommandRunner {
public:
    std::string vgs_rows, lvs_rows, sessions;
    std::vector<std::string> changes;
    Result<CommandOutput> run(const Command& c) override {
        if (c.display() == lvm::vgs_report_command().display())
            return CommandOutput{0, "{\"report\": [{\"vg\": [" + vgs_rows + "]}]}", ""};
        if (c.display() == lvm::lvs_report_command().display())
            return CommandOutput{0, "{\"report\": [{\"lv\": [" + lvs_rows + "]}]}", ""};
        if (c.display() == "iscsiadm -m session")
            return sessions.empty() ? CommandOutput{21, "", "iscsiadm: No active sessions.\n"}
                                    : CommandOutput{0, sessions, ""};
        changes.push_back(c.display());
        return CommandOutput{};
    }
    void attached(const std::string& vdi_size = "67108864", const std::string& attr = "-wi-a-----") {
        sessions = std::string("tcp: [1] 10.0.0.1:3260,1 ") + kTarget + " (non-flash)\n";
        vgs_rows = std::string("{\"vg_name\":\"") + kVg +
                   "\", \"vg_size\":\"1061158912\", \"vg_free\":\"989855744\", \"vg_extent_size\":\"4194304\", "
                   "\"pv_count\":\"1\", \"lv_count\":\"2\", \"vg_tags\":\"sanagent,sr_name=vm1,sr_uuid=2b4c6f0e-7d9a-"
                   "4e1b-8c3f-0a1b2c3d4e5f\"}";
        auto lv = [&](const std::string& name, const std::string& size, const std::string& tags) {
            return std::string("{\"vg_name\":\"") + kVg + "\", \"lv_name\":\"" + name +
                   "\", \"lv_uuid\":\"x\", \"lv_attr\":\"" + attr + "\", \"lv_size\":\"" + size +
                   "\", \"pool_lv\":\"\", \"origin\":\"\", \"data_percent\":\"\", \"metadata_percent\":\"\", "
                   "\"lv_tags\":\"" +
                   tags + "\", \"lv_when_full\":\"\"}";
        };
        lvs_rows = lv("MGT", "4194304", "sanagent") + ", " +
                   lv("LV-8d1e0000-0000-4000-8000-000000000001", vdi_size, "sanagent,vdi_name=vm1");
    }
};

Config parse(const std::string& text) {
    Config config;
    Diagnostics diagnostics;
    merge_toml(config, text, "test.conf", diagnostics);
    BOOST_TEST_REQUIRE(diagnostics.empty(), diagnostics.text());
    return config;
}

struct Fixture {
    test::TempDir dir;
    std::shared_ptr<FakeHost> runner = std::make_shared<FakeHost>();
    SrModule sr{default_host_seams(runner)};
    VdiModule vdi{default_host_seams(runner)};
    Ownership owned;

    std::string conf(const std::string& roles = "host") {
        return "[agent]\nstate_dir = \"" + dir.root.string() + "/state\"\n[node]\nname = \"h1\"\nroles = [\"" + roles +
               "\"]\n[sr.vm1]\ntarget = \"" + kTarget +
               "\"\nportals = [\"10.0.0.1\"]\n[vdi.vm1]\nsr = \"vm1\"\nsize = \"64M\"\n";
    }
    std::vector<Step> plan(const Config& config) {
        BOOST_TEST_REQUIRE(sr.observe().ok());
        BOOST_TEST_REQUIRE(vdi.observe().ok());
        auto steps = sr.plan(config, owned);
        auto more = vdi.plan(config, owned);
        steps.insert(steps.end(), more.begin(), more.end());
        return steps;
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(sr_modules)

BOOST_FIXTURE_TEST_CASE(a_storage_node_has_no_srs, Fixture) {
    auto config = parse(conf("storage"));
    BOOST_TEST(plan(config).empty());
    BOOST_TEST(sr.desired_objects(config).empty());
}

BOOST_FIXTURE_TEST_CASE(a_fresh_host_logs_in_creates_the_sr_then_the_vdi, Fixture) {
    auto steps = plan(parse(conf()));
    BOOST_TEST_REQUIRE(steps.size() == 3u, to_text(steps));
    BOOST_TEST(steps[0].object == "sr/vm1");
    BOOST_TEST(steps[0].action.find("log in to iqn.2026-11.org.example:g:vm1 at 10.0.0.1:3260") == 0u);
    BOOST_TEST(static_cast<bool>(steps[0].undo));  // a failed create logs out again
    BOOST_TEST(steps[1].action.find("create SR vm1") == 0u);
    BOOST_TEST(steps[2].object == "vdi/vm1");
    BOOST_TEST(steps[2].action.find("create VDI vm1 (64M)") == 0u);
    BOOST_TEST(runner->changes.empty());  // planning changes nothing
}

BOOST_FIXTURE_TEST_CASE(an_attached_sr_with_its_vdi_plans_nothing, Fixture) {
    runner->attached();
    auto config = parse(conf());
    BOOST_TEST(plan(config).empty());
    auto status = sr.status(config, owned);
    BOOST_TEST_REQUIRE(status.size() == 1u);
    BOOST_TEST(health_name(status[0].health) == "ok");
    BOOST_TEST(status[0].actual.find(kVg) == 0u);
    BOOST_TEST(status[0].detail.empty());
}

BOOST_FIXTURE_TEST_CASE(an_inactive_sr_is_activated_without_a_new_login, Fixture) {
    runner->attached("67108864", "-wi-------");
    auto steps = plan(parse(conf()));
    BOOST_TEST_REQUIRE(steps.size() == 1u, to_text(steps));
    BOOST_TEST(steps[0].action == std::string("activate ") + kVg);
}

BOOST_FIXTURE_TEST_CASE(a_bigger_size_grows_the_vdi_and_a_smaller_one_is_refused, Fixture) {
    runner->attached("33554432");
    auto steps = plan(parse(conf()));
    BOOST_TEST_REQUIRE(steps.size() == 1u, to_text(steps));
    BOOST_TEST(steps[0].action.find("grow VDI vm1") == 0u);
    BOOST_TEST(steps[0].apply().ok());
    BOOST_TEST_REQUIRE(runner->changes.size() == 1u);
    BOOST_TEST(runner->changes[0] ==
               std::string("lvm lvextend -L 67108864b ") + kVg + "/LV-8d1e0000-0000-4000-8000-000000000001");

    runner->attached("134217728");
    steps = plan(parse(conf()));
    BOOST_TEST_REQUIRE(steps.size() == 1u);
    auto refused = steps[0].apply();
    BOOST_TEST_REQUIRE(!refused.ok());
    BOOST_TEST(refused.error().message.find("would lose the data") != std::string::npos);
}

BOOST_FIXTURE_TEST_CASE(a_detached_sr_and_its_vdis_are_left_alone, Fixture) {
    dir.write("state/sr/vm1.detached", "");
    auto config = parse(conf());
    BOOST_TEST(plan(config).empty());
    auto status = vdi.status(config, owned);
    BOOST_TEST_REQUIRE(status.size() == 1u);
    BOOST_TEST(status[0].actual == "SR detached");
}

BOOST_FIXTURE_TEST_CASE(two_vdis_in_one_sr_are_warned_about, Fixture) {
    runner->attached();
    runner->lvs_rows += std::string(", {\"vg_name\":\"") + kVg +
                        "\", \"lv_name\":\"LV-2\", \"lv_uuid\":\"y\", \"lv_attr\":\"-wi-a-----\", "
                        "\"lv_size\":\"8388608\", \"pool_lv\":\"\", \"origin\":\"\", \"data_percent\":\"\", "
                        "\"metadata_percent\":\"\", \"lv_tags\":\"sanagent,vdi_name=other\", \"lv_when_full\":\"\"}";
    auto config = parse(conf());
    BOOST_TEST_REQUIRE(sr.observe().ok());
    auto status = sr.status(config, owned);
    BOOST_TEST(status[0].detail == "warning: one VDI per SR is recommended (2 here)");
}

BOOST_FIXTURE_TEST_CASE(a_volume_gives_the_target_portals_and_chap, Fixture) {
    auto config = parse(
        "[node]\nname = \"xs01\"\nroles = [\"host\"]\n[group]\nname = \"g\"\niqn_prefix = \"iqn.2026-11.org.example\"\n"
        "[cluster.c]\nnodes = { n1 = \"10.0.10.11\", n2 = \"10.0.10.12:3261\" }\n"
        "[server.xs01]\niqn = \"iqn.2026-11.org.example:xs01\"\nchap_user = \"xs01\"\n"
        "chap_secret_file = \"/etc/sanagent/secrets/xs01\"\n"
        "[volume.db]\nsize = \"1G\"\n[sr.db]\nvolume = \"db\"\n");
    auto spec = sr_spec(config, "db");
    BOOST_TEST(spec.target == "iqn.2026-11.org.example:g:db");
    BOOST_TEST(spec.portals == (std::vector<std::string>{"10.0.10.11:3260", "10.0.10.12:3261"}),
               boost::test_tools::per_element());
    BOOST_TEST(spec.chap_user == "xs01");
    BOOST_TEST(spec.chap_secret_file == "/etc/sanagent/secrets/xs01");
    Diagnostics diagnostics;
    sr.validate(config, diagnostics);
    BOOST_TEST(diagnostics.empty(), diagnostics.text());
}

BOOST_FIXTURE_TEST_CASE(bad_targets_and_portals_are_config_errors, Fixture) {
    auto config = parse(
        "[node]\nroles = [\"host\"]\n[sr.a]\nportals = [\"10.0.0.1\"]\n"
        "[sr.b]\ntarget = \"iqn.2026-11.org.example:../x\"\nportals = [\"10.0.0.1\"]\n"
        "[sr.c]\ntarget = \"iqn.2026-11.org.example:c\"\nportals = [\"host.example\"]\n");
    Diagnostics diagnostics;
    sr.validate(config, diagnostics);
    const auto text = diagnostics.text();
    BOOST_TEST(diagnostics.size() == 3u, text);
    BOOST_TEST(text.find("[sr.a] target: expected volume = \"NAME\" or target = \"IQN\"") != std::string::npos, text);
    BOOST_TEST(text.find("[sr.b] target: expected an IQN") != std::string::npos, text);
    BOOST_TEST(text.find("[sr.c] portals: expected IPv4[:PORT]") != std::string::npos, text);
}

BOOST_AUTO_TEST_SUITE_END()
