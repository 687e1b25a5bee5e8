// The host modules' plans from what lvm and iscsiadm report: nothing to do
// when the SR is attached and the VDIs are as configured, login + create on a
// fresh host, grow on a bigger size, nothing for a detached SR, config checks.
#include "sanagent/agent/sr_modules.h"

#include <boost/test/unit_test.hpp>
#include <fstream>

#include "test_dir.h"
#include "config_text.h"

using namespace sanagent;
using namespace sanagent::agent;

namespace {

constexpr const char* kVg = "VG_XenStorage-2b4c6f0e-7d9a-4e1b-8c3f-0a1b2c3d4e5f";
constexpr const char* kTarget = "iqn.2026-11.org.example:g:vm1";

// Answers the report commands and `iscsiadm -m session` from its fields;
// records anything else.
class FakeHost : public CommandRunner {
public:
    std::string vgs_rows, lvs_rows, sessions, open_rows;
    std::string pv_rows;  // `lvm pvs -o vg_name,pv_name`: "VG DEVICE" lines
    bool multipathd = false;
    std::vector<std::string> changes;
    Result<CommandOutput> run(const Command& c) override {
        if (c.display() == lvm::vgs_report_command().display())
            return CommandOutput{0, "{\"report\": [{\"vg\": [" + vgs_rows + "]}]}", ""};
        if (c.display() == lvm::lvs_report_command().display())
            return CommandOutput{0, "{\"report\": [{\"lv\": [" + lvs_rows + "]}]}", ""};
        if (c.display() == "multipathd show daemon")
            return multipathd ? CommandOutput{0, "pid 42 idle\n", ""} : CommandOutput{1, "", "cannot connect\n"};
        if (c.display().starts_with("lvm lvs --reportformat json -o lv_name,lv_device_open,lv_tags"))
            return CommandOutput{0, "{\"report\": [{\"lv\": [" + open_rows + "]}]}", ""};
        if (c.display() == "lvm pvs --noheadings -o vg_name,pv_name") return CommandOutput{0, pv_rows, ""};
        if (c.display().starts_with("iscsiadm -m discovery -t sendtargets -p ")) {
            // Every portal offers the one target.
            return CommandOutput{0, c.argv.back() + ",1 " + kTarget + "\n", ""};
        }
        if (c.display() == "iscsiadm -m session")
            return sessions.empty() ? CommandOutput{21, "", "iscsiadm: No active sessions.\n"}
                                    : CommandOutput{0, sessions, ""};
        changes.push_back(c.display());
        return CommandOutput{};
    }
    static std::string lv_row(const std::string& name, const std::string& size, const std::string& tags,
                              const std::string& origin = "", const std::string& attr = "-wi-a-----") {
        return std::string("{\"vg_name\":\"") + kVg + "\", \"lv_name\":\"" + name +
               "\", \"lv_uuid\":\"x\", \"lv_attr\":\"" + attr + "\", \"lv_size\":\"" + size +
               "\", \"pool_lv\":\"\", \"origin\":\"" + origin +
               "\", \"data_percent\":\"\", \"metadata_percent\":\"\", \"lv_tags\":\"" + tags +
               "\", \"lv_when_full\":\"\"}";
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

using sanagent::agent::test::parse;

// /dev, /sys and the node records under `dir`; no waiting for disks.
HostSeams fake_seams(const test::TempDir& dir, std::shared_ptr<FakeHost> runner) {
    auto seams = default_host_seams(std::move(runner));
    seams.dev = dir.root / "dev";
    seams.sysfs = dir.root / "sys";
    seams.node_db = dir.root / "nodes";
    seams.device_wait = std::chrono::milliseconds(0);
    return seams;
}

struct Fixture {
    test::TempDir dir;
    std::shared_ptr<FakeHost> runner = std::make_shared<FakeHost>();
    SrModule sr{fake_seams(dir, runner)};
    VdiModule vdi{fake_seams(dir, runner)};
    Ownership owned;

    std::string conf(const std::string& roles = "host") {
        return "[agent]\nstate_dir = \"" + dir.root.string() + "/state\"\n[node]\nname = \"h1\"\nroles = [\"" + roles +
               "\"]\n[sr.vm1]\ntarget = \"" + kTarget +
               "\"\nportals = [\"10.0.0.1\"]\n[vdi.vm1]\nsr = \"vm1\"\nsize = \"64M\"\n";
    }
    std::string joined_changes() const {
        std::string out;
        for (const auto& c : runner->changes) out += c + "\n";
        return out;
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
    auto config = parse(conf() + "[link.eth1]\naddresses = [\"10.0.0.20/24\"]\n");  // the storage network
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
    dir.write(std::string("dev/") + kVg + "/MGT", "{\"attached_host\": \"h1\", \"vdis\": {}}");
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
    BOOST_TEST(status[0].detail.starts_with("warning: one VDI per SR is recommended (2 here); iSCSI to 10.0.0.1"),
               status[0].detail);
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

// ---- sanctl vdi operations, multipath, warnings --------------------------------

namespace {

constexpr const char* kExtra = "LV-e0000000-0000-4000-8000-000000000002";

// An attached SR holding vm1 (in the config) and extra (not), with an MGT
// volume the operations record into.
struct OpsFixture : Fixture {
    HostSeams seams = fake_seams(dir, runner);
    Config config = parse(conf());
    OpsFixture() {
        seams.dev = dir.root / "dev";
        dir.write(std::string("dev/") + kVg + "/MGT",
                  "{\"format\": \"sanagent-sr-1\", \"sr\": {}, \"vdis\": {\"e0000000-0000-4000-8000-000000000002\": "
                  "{\"name\": \"extra\"}}}");
        runner->attached();
        runner->lvs_rows += ", " + FakeHost::lv_row(kExtra, "16777216", "sanagent,vdi_name=extra");
    }
    std::string mgt() {
        std::ifstream in(seams.dev / kVg / "MGT");
        return std::string(std::istreambuf_iterator<char>(in), {});
    }
    std::string message(const Status& s) { return s ? std::string("(ok)") : s.error().message; }
};

bool has(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

}  // namespace

BOOST_FIXTURE_TEST_CASE(vdi_delete_needs_the_flag_and_refuses_configured_open_or_copied_vdis, OpsFixture) {
    VdiRequest r{.name = "extra"};
    BOOST_TEST(has(message(remove_vdi(seams, config, r)), "--yes-destroy-data"));
    r.destroy = true;
    VdiRequest configured{.name = "vm1", .destroy = true};
    BOOST_TEST(has(message(remove_vdi(seams, config, configured)), "still in the config"));

    runner->open_rows = std::string("{\"lv_name\":\"") + kExtra + "\", \"lv_device_open\":\"open\", \"lv_tags\":\"\"}";
    BOOST_TEST(has(message(remove_vdi(seams, config, r)), "is open"));
    runner->open_rows.clear();

    const std::string lvs = runner->lvs_rows;
    runner->lvs_rows += ", " + FakeHost::lv_row("LV-5", "16777216", "sanagent,vdi_name=before", kExtra);
    BOOST_TEST(has(message(remove_vdi(seams, config, r)), "snapshots or clones depend on it (before)"));
    runner->lvs_rows = lvs;
    BOOST_TEST(runner->changes.empty());  // every refusal changed nothing

    BOOST_TEST(remove_vdi(seams, config, r).ok());
    BOOST_TEST_REQUIRE(runner->changes.size() == 1u);
    BOOST_TEST(runner->changes[0] == std::string("lvm lvremove --yes ") + kVg + "/" + kExtra);
    BOOST_TEST(!has(mgt(), "extra"));  // forgotten in MGT

    VdiRequest missing{.name = "nosuch", .destroy = true};
    BOOST_TEST(has(message(remove_vdi(seams, config, missing)), "in no attached SR"));
}

BOOST_FIXTURE_TEST_CASE(vdi_resize_grows_and_shrinks_only_when_forced, OpsFixture) {
    VdiRequest configured{.name = "vm1", .size = 128u << 20};
    BOOST_TEST(has(message(resize_vdi(seams, config, configured)), "change it there and apply"));
    VdiRequest smaller{.name = "extra", .size = 8u << 20};
    BOOST_TEST(has(message(resize_vdi(seams, config, smaller)), "loses the data past the new end; refused"));
    BOOST_TEST(runner->changes.empty());
    VdiRequest bigger{.name = "extra", .size = 32u << 20};
    BOOST_TEST(resize_vdi(seams, config, bigger).ok());
    smaller.force = true;
    BOOST_TEST(resize_vdi(seams, config, smaller).ok());
    BOOST_TEST_REQUIRE(runner->changes.size() == 2u);
    BOOST_TEST(runner->changes[0] == std::string("lvm lvextend -L 33554432b ") + kVg + "/" + kExtra);
    BOOST_TEST(runner->changes[1] == std::string("lvm lvreduce --yes -L 8388608b ") + kVg + "/" + kExtra);
}

BOOST_FIXTURE_TEST_CASE(vdi_snapshot_and_clone_are_tagged_lvm_snapshots, OpsFixture) {
    BOOST_TEST(copy_vdi(seams, config, {.name = "vm1"}, "vm1-before", false).ok());
    BOOST_TEST(copy_vdi(seams, config, {.name = "vm1"}, "vm2", true).ok());
    BOOST_TEST_REQUIRE(runner->changes.size() == 2u);
    const auto& snap = runner->changes[0];
    BOOST_TEST(snap.starts_with("lvm lvcreate --yes --snapshot --permission r -L 67108864b -n LV-"), snap);
    BOOST_TEST(has(snap, "--addtag vdi_name=vm1-before --addtag snapshot_of=vm1"), snap);
    BOOST_TEST(snap.ends_with(std::string(kVg) + "/LV-8d1e0000-0000-4000-8000-000000000001"), snap);
    BOOST_TEST(has(runner->changes[1], "--permission rw"));
    BOOST_TEST(has(runner->changes[1], "--addtag clone_of=vm1"));
    BOOST_TEST(has(mgt(), "\"snapshot_of\""));

    BOOST_TEST(has(message(copy_vdi(seams, config, {.name = "vm1"}, "extra", false)), "exists already"));
    BOOST_TEST(has(message(copy_vdi(seams, config, {.name = "vm1"}, "../x", false)), "expected a name"));
    runner->lvs_rows += ", " + FakeHost::lv_row("LV-5", "67108864", "sanagent,vdi_name=snap",
                                                "LV-8d1e0000-0000-4000-8000-000000000001");
    BOOST_TEST(has(message(copy_vdi(seams, config, {.name = "snap"}, "snap2", false)), "cannot snapshot a snapshot"));
    runner->vgs_rows.replace(runner->vgs_rows.find("989855744"), 9, "1048576");
    BOOST_TEST(has(message(copy_vdi(seams, config, {.name = "vm1"}, "big", false)), "needs 64.0 MiB free"));
}

BOOST_FIXTURE_TEST_CASE(vdi_create_outside_the_config_needs_sr_and_size, OpsFixture) {
    BOOST_TEST(has(message(create_vdi(seams, config, {.name = "new"})), "--sr SR --size SIZE"));
    BOOST_TEST(has(message(create_vdi(seams, config, {.name = "vm1", .size = 1u << 30})), "change it there"));
    BOOST_TEST(
        has(message(create_vdi(seams, config, {.name = "extra", .sr = "vm1", .size = 16u << 20})), "exists already"));
    BOOST_TEST(create_vdi(seams, config, {.name = "new", .sr = "vm1", .size = 16u << 20}).ok());
    BOOST_TEST_REQUIRE(runner->changes.size() == 1u);
    BOOST_TEST(has(runner->changes[0], "-L 16777216b -n LV-"));
    BOOST_TEST(has(runner->changes[0], "--addtag vdi_name=new"));
}

// An SR is attached to one host at a time: its MGT names that host, and
// another host neither changes the VG's metadata nor attaches it (unless
// forced, taking it over); detach frees it.
BOOST_FIXTURE_TEST_CASE(an_sr_attached_on_another_host_refuses_changes_and_attach, OpsFixture) {
    dir.write(std::string("dev/") + kVg + "/MGT",
              "{\"format\": \"sanagent-sr-1\", \"attached_host\": \"h2\", \"vdis\": {}}");
    const std::string there = "SR vm1 is attached on host h2";
    BOOST_TEST(has(message(remove_vdi(seams, config, {.name = "extra", .destroy = true})), there));
    BOOST_TEST(has(message(resize_vdi(seams, config, {.name = "extra", .size = 32u << 20})), there));
    BOOST_TEST(has(message(copy_vdi(seams, config, {.name = "vm1"}, "vm1-before", false)), there));
    BOOST_TEST(has(message(create_vdi(seams, config, {.name = "new", .sr = "vm1", .size = 16u << 20})), there));
    BOOST_TEST(runner->changes.empty());

    runner->attached("67108864", "-wi-------");  // inactive here
    const auto state = dir.root / "state";
    auto refused = message(attach_sr(seams, config, "vm1", state));
    BOOST_TEST(has(refused, there), refused);
    BOOST_TEST(has(refused, "sanctl sr detach vm1 on h2 first"), refused);
    BOOST_TEST(has(refused, "sanctl sr attach vm1 --force"), refused);
    const std::string mgt_lv = std::string(kVg) + "/MGT";
    // MGT read, then the VG left inactive (udev may have activated it at login).
    BOOST_TEST_REQUIRE(runner->changes.size() == 2u, joined_changes());
    BOOST_TEST(runner->changes[0] == "lvm lvchange --activate y " + mgt_lv);
    BOOST_TEST(runner->changes[1] == std::string("lvm vgchange --activate n ") + kVg);

    runner->changes.clear();
    BOOST_TEST(attach_sr(seams, config, "vm1", state, true).ok());  // --force: h2 is gone
    BOOST_TEST(has(joined_changes(), std::string("lvm vgchange --activate y ") + kVg), joined_changes());
    BOOST_TEST(has(mgt(), "\"attached_host\": \"h1\""), mgt());

    runner->attached();
    BOOST_TEST(detach_sr(seams, config, "vm1", state, false).ok());
    BOOST_TEST(has(mgt(), "\"attached_host\": \"\""), mgt());
}

BOOST_FIXTURE_TEST_CASE(with_multipathd_every_portal_is_a_path, Fixture) {
    auto two_portals = [&]() {
        std::string text = conf();
        text.replace(text.find("portals = [\"10.0.0.1\"]"), 22, "portals = [\"10.0.0.1\", \"10.0.0.2\"]");
        return text;
    };
    auto two = [&](bool multipath) {
        runner->multipathd = multipath;
        return plan(parse(two_portals()));
    };
    auto steps = two(false);
    BOOST_TEST_REQUIRE(!steps.empty());
    BOOST_TEST(steps[0].action == "log in to iqn.2026-11.org.example:g:vm1 at 10.0.0.1:3260 (node.startup automatic)");
    steps = two(true);
    BOOST_TEST(steps[0].action ==
               "log in to iqn.2026-11.org.example:g:vm1 at 10.0.0.1:3260, 10.0.0.2:3260 "
               "(node.startup automatic, multipath, replacement_timeout 15 s)");
    // One session is not enough under multipath: the second path is logged in
    // to, and nothing else is done to the live SR.
    runner->attached();
    runner->pv_rows = std::string(kVg) + " " + (dir.root / "dev/mapper/36001405aa").string() + "\n";
    steps = two(true);
    BOOST_TEST_REQUIRE(steps.size() == 1u, to_text(steps));
    BOOST_TEST(steps[0].action.starts_with("log in to"));
    auto degraded = sr.status(parse(two_portals()), owned);
    BOOST_TEST(health_name(degraded[0].health) == "degraded");
    BOOST_TEST(has(degraded[0].detail, "only 1 of 2 paths are logged in"), degraded[0].detail);
    runner->sessions += std::string("tcp: [2] 10.0.0.2:3260,1 ") + kTarget + " (non-flash)\n";
    BOOST_TEST(two(true).empty());
    auto status = sr.status(parse(conf()), owned);
    BOOST_TEST(has(status[0].actual, "multipath: 2 path(s)"));
}

namespace {

std::string two_portal_conf(Fixture& f) {
    std::string text = f.conf();
    text.replace(text.find("portals = [\"10.0.0.1\"]"), 22, "portals = [\"10.0.0.1\", \"10.0.0.2\"]");
    return text;
}

}  // namespace

// A multipath SR with one path down and a VDI inactive: the login of the
// missing path succeeds, the activation fails (no disk shows up). The undo
// must log out of the path it made only: the path that was up carries the
// running VMs' I/O.
BOOST_FIXTURE_TEST_CASE(a_failed_activation_logs_out_only_the_new_path, Fixture) {
    runner->multipathd = true;
    runner->attached("67108864", "-wi-------");
    runner->lvs_rows.replace(runner->lvs_rows.find("-wi-------"), 10, "-wi-a-----");  // MGT active, the VDI not
    runner->pv_rows = std::string(kVg) + " " + (dir.root / "dev/mapper/36001405aa").string() + "\n";
    dir.write(std::string("nodes/") + kTarget + "/10.0.0.2,3260,1/default", "node.name = x\n# END RECORD\n");
    auto steps = plan(parse(two_portal_conf(*this)));
    BOOST_TEST_REQUIRE(steps.size() == 2u, to_text(steps));
    BOOST_TEST(steps[0].action.starts_with("log in to"));
    BOOST_TEST(steps[1].action == std::string("activate ") + kVg);
    BOOST_TEST_REQUIRE(steps[0].apply().ok());
    const std::string login = std::string("iscsiadm -m node -T ") + kTarget + " -p 10.0.0.2:3260 --login";
    BOOST_TEST(has(joined_changes(), login), joined_changes());
    BOOST_TEST(!has(joined_changes(), "-p 10.0.0.1:3260 --login"));  // the live path is left alone
    BOOST_TEST_REQUIRE(!steps[1].apply().ok());
    runner->changes.clear();
    BOOST_TEST_REQUIRE(steps[0].undo().ok());
    BOOST_TEST_REQUIRE(runner->changes.size() == 2u, joined_changes());
    BOOST_TEST(runner->changes[0] == std::string("iscsiadm -m node -T ") + kTarget + " -p 10.0.0.2:3260 --logout");
    BOOST_TEST(runner->changes[1] == std::string("iscsiadm -m node -T ") + kTarget + " -p 10.0.0.2:3260 -o delete");
}

// multipathd started on a host whose SR is in use through /dev/sdb: no
// second session (multipath could not claim the busy disk anyway), a warning
// saying how to switch.
BOOST_FIXTURE_TEST_CASE(a_single_path_sr_in_use_is_not_switched_to_multipath, Fixture) {
    runner->multipathd = true;
    runner->attached();
    runner->pv_rows = std::string("  ") + kVg + " /dev/sdb\n";
    auto config = parse(two_portal_conf(*this));
    BOOST_TEST(plan(config).empty(), to_text(plan(config)));
    auto status = sr.status(config, owned);
    BOOST_TEST(health_name(status[0].health) == "ok");
    BOOST_TEST(has(status[0].detail, "multipathd runs but the SR uses one path's disk (/dev/sdb)"), status[0].detail);
    BOOST_TEST(has(status[0].detail, "sanctl sr detach vm1 && sanctl sr attach vm1"), status[0].detail);
    BOOST_TEST(!has(status[0].actual, "multipath"));
    // A VDI inactive there: activated as the single-path SR it is, no login.
    runner->attached("67108864", "-wi-------");
    runner->lvs_rows.replace(runner->lvs_rows.find("-wi-------"), 10, "-wi-a-----");
    auto steps = plan(config);
    BOOST_TEST_REQUIRE(steps.size() == 1u, to_text(steps));
    BOOST_TEST(steps[0].action == std::string("activate ") + kVg);
}

BOOST_FIXTURE_TEST_CASE(iscsi_off_the_storage_network_is_warned_about, Fixture) {
    auto spec_of = [&](const Config& c) { return sr_spec(c, "vm1"); };
    auto bare = parse(conf());
    auto warnings = sr_config_warnings(bare, spec_of(bare));
    BOOST_TEST_REQUIRE(warnings.size() == 1u);
    BOOST_TEST(has(warnings[0], "iSCSI to 10.0.0.1 is not on a dedicated storage network"));
    auto san = parse(conf() + "[bond.san0]\nslaves = [\"eth2\", \"eth3\"]\naddresses = [\"10.0.0.20/24\"]\n");
    BOOST_TEST(sr_config_warnings(san, spec_of(san)).empty());
    auto other = parse(conf() + "[link.eth1]\naddresses = [\"10.9.0.20/24\"]\n");
    BOOST_TEST(sr_config_warnings(other, spec_of(other)).size() == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
