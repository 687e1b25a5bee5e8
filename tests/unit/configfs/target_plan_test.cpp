#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <filesystem>

#include "sanagent/configfs/target_plan.h"

namespace fs = std::filesystem;
using namespace sanagent::configfs;
using Kind = ConfigfsOp::Kind;

namespace {

struct TempRoot {
    fs::path root = fs::temp_directory_path() / ("sanagent-plan-" + std::to_string(::getpid()));
    ConfigfsTree tree{root, ConfigfsTree::Backing::PlainDirectory};
    TempRoot() {
        fs::remove_all(root);
        fs::create_directories(root / "core");
    }
    ~TempRoot() { fs::remove_all(root); }
};

TargetSpec volume_spec() {
    TargetSpec spec;
    spec.iqn = "iqn.2026-11.org.example:hp-boulder:xpsp2-01";
    spec.storage = {"iblock", "xpsp2-01", "/dev/sanpool/xpsp2-01", 0, "5a0b3c4d5e6f", true};
    spec.portals = {"10.0.10.11:3260"};
    spec.acls = {{"iqn.2026-11.org.example:xenserver-01", ChapSpec{"xs01", "secret-0123456789", "", ""}},
                 {"iqn.2026-11.org.example:xenserver-02", std::nullopt}};
    return spec;
}

std::ptrdiff_t index_of(const std::vector<ConfigfsOp>& ops, const std::string& path_suffix, Kind kind) {
    for (std::size_t i = 0; i < ops.size(); ++i) {
        const auto p = ops[i].path.string();
        if (ops[i].kind == kind && p.size() >= path_suffix.size() &&
            p.compare(p.size() - path_suffix.size(), path_suffix.size(), path_suffix) == 0)
            return static_cast<std::ptrdiff_t>(i);
    }
    return -1;
}

}  // namespace

// A loaded LIO with the iscsi fabric and nothing in it.
LioState empty_fabric() {
    LioState state;
    state.present = true;
    state.iscsi_fabric = true;
    return state;
}

BOOST_AUTO_TEST_CASE(a_new_target_is_built_in_the_kernels_order) {
    auto ops = plan_target(volume_spec(), empty_fabric());
    auto enable_so = index_of(ops, "core/iblock_57/xpsp2-01/enable", Kind::Write);
    auto serial = index_of(ops, "wwn/vpd_unit_serial", Kind::Write);
    auto lun_link = index_of(ops, "lun/lun_0/xpsp2-01", Kind::MakeLink);
    auto acl = index_of(ops, "acls/iqn.2026-11.org.example:xenserver-01", Kind::MakeDir);
    auto map = index_of(ops, "acls/iqn.2026-11.org.example:xenserver-01/lun_0/map", Kind::MakeLink);
    auto portal = index_of(ops, "np/10.0.10.11:3260", Kind::MakeDir);
    auto tpg_enable = index_of(ops, "tpgt_1/enable", Kind::Write);
    BOOST_TEST(enable_so >= 0);
    BOOST_TEST(serial > enable_so);      // the device is configured before its serial
    BOOST_TEST(lun_link > serial);       // the serial cannot change once exported
    BOOST_TEST(map > lun_link);          // a mapped LUN needs its LUN
    BOOST_TEST(acl > 0);
    BOOST_TEST(portal > 0);
    BOOST_TEST(tpg_enable == static_cast<std::ptrdiff_t>(ops.size()) - 1);  // enable last
}

BOOST_AUTO_TEST_CASE(tpg_is_never_in_demo_mode_and_authenticates_with_chap) {
    auto ops = plan_target(volume_spec(), empty_fabric());
    auto value_of = [&](const std::string& suffix) {
        auto i = index_of(ops, suffix, Kind::Write);
        BOOST_TEST_REQUIRE(i >= 0, "no write to " << suffix);
        return ops[static_cast<std::size_t>(i)].value;
    };
    BOOST_TEST(value_of("attrib/generate_node_acls") == "0");
    BOOST_TEST(value_of("attrib/demo_mode_write_protect") == "1");
    BOOST_TEST(value_of("attrib/authentication") == "1");
    BOOST_TEST(value_of("attrib/demo_mode_discovery") == "0");  // SendTargets lists only assigned targets
    BOOST_TEST(value_of("attrib/emulate_tpu") == "1");
}

BOOST_AUTO_TEST_CASE(secrets_are_never_described) {
    auto ops = plan_target(volume_spec(), empty_fabric());
    bool saw_password = false;
    for (const auto& op : ops) {
        BOOST_TEST(op.describe().find("secret-0123456789") == std::string::npos);
        if (op.path.filename() == "password") {
            saw_password = true;
            BOOST_TEST(op.secret);
        }
    }
    BOOST_TEST(saw_password);
}

BOOST_FIXTURE_TEST_CASE(applying_then_planning_again_changes_nothing, TempRoot) {
    auto spec = volume_spec();
    auto ops = plan_target(spec, observe_lio(tree));
    BOOST_TEST_REQUIRE(apply_ops(tree, ops, "volume xpsp2-01").ok());
    auto again = plan_target(spec, observe_lio(tree));
    for (const auto& op : again) BOOST_TEST_MESSAGE("unexpected: " << op.describe());
    BOOST_TEST(again.empty());
}

BOOST_FIXTURE_TEST_CASE(unassigning_a_server_removes_only_its_acl, TempRoot) {
    auto spec = volume_spec();
    BOOST_TEST_REQUIRE(apply_ops(tree, plan_target(spec, observe_lio(tree)), "v").ok());
    spec.acls.pop_back();
    auto ops = plan_target(spec, observe_lio(tree));
    BOOST_TEST_REQUIRE(!ops.empty());
    for (const auto& op : ops) {
        BOOST_TEST((op.kind == Kind::RemoveDir || op.kind == Kind::RemoveLink));
        BOOST_TEST(op.path.string().find("xenserver-02") != std::string::npos);
    }
}

BOOST_FIXTURE_TEST_CASE(changing_a_chap_secret_writes_only_the_secret, TempRoot) {
    auto spec = volume_spec();
    BOOST_TEST_REQUIRE(apply_ops(tree, plan_target(spec, observe_lio(tree)), "v").ok());
    spec.acls[0].chap->password = "another-secret-42";
    auto ops = plan_target(spec, observe_lio(tree));
    BOOST_TEST_REQUIRE(ops.size() == 1u);
    BOOST_TEST(ops[0].path.filename() == "password");
    BOOST_TEST(ops[0].secret);
}

// What a pass at LioDepth::plan (the target module's) sees of changes made by
// hand: each comes back as exactly the op that repairs it.
BOOST_FIXTURE_TEST_CASE(changes_made_by_hand_are_planned_back_at_plan_depth, TempRoot) {
    auto spec = volume_spec();
    BOOST_TEST_REQUIRE(apply_ops(tree, plan_target(spec, observe_lio(tree, LioDepth::plan)), "v").ok());
    const std::string tpg = "iscsi/" + spec.iqn + "/tpgt_1";
    fs::remove(root / tpg / "lun/lun_0/xpsp2-01");  // the device unlinked from the LUN
    fs::remove(root / tpg / "acls/iqn.2026-11.org.example:xenserver-01/lun_0/map");
    BOOST_TEST_REQUIRE(tree.write_attr(tpg + "/attrib/demo_mode_discovery", "1").ok());
    BOOST_TEST_REQUIRE(tree.write_attr("core/iblock_57/xpsp2-01/attrib/emulate_tpu", "0").ok());
    auto ops = plan_target(spec, observe_lio(tree, LioDepth::plan));
    for (const auto& op : ops) BOOST_TEST_MESSAGE(op.describe());
    BOOST_TEST(ops.size() == 4u);
    BOOST_TEST(index_of(ops, "lun/lun_0/xpsp2-01", Kind::MakeLink) >= 0);
    BOOST_TEST(index_of(ops, "xenserver-01/lun_0/map", Kind::MakeLink) >= 0);
    BOOST_TEST(index_of(ops, "attrib/demo_mode_discovery", Kind::Write) >= 0);
    BOOST_TEST(index_of(ops, "attrib/emulate_tpu", Kind::Write) >= 0);
    BOOST_TEST_REQUIRE(apply_ops(tree, ops, "v").ok());
    BOOST_TEST(plan_target(spec, observe_lio(tree, LioDepth::plan)).empty());
}

BOOST_FIXTURE_TEST_CASE(discovery_auth_is_set_credentials_first_and_then_left_alone, TempRoot) {
    fs::create_directories(root / "iscsi" / "discovery_auth");
    const ChapSpec chap{"disc", "discovery-secret-01", "", ""};
    auto ops = plan_discovery_auth(chap, observe_lio(tree));
    BOOST_TEST_REQUIRE(!ops.empty());
    BOOST_TEST(ops.back().path == fs::path("iscsi/discovery_auth/enforce_discovery_auth"));
    BOOST_TEST(ops.back().value == "1");
    BOOST_TEST(index_of(ops, "discovery_auth/password", Kind::Write) >= 0);
    for (const auto& op : ops) BOOST_TEST(op.describe().find("discovery-secret-01") == std::string::npos);
    BOOST_TEST_REQUIRE(apply_ops(tree, ops, "discovery").ok());
    BOOST_TEST(plan_discovery_auth(chap, observe_lio(tree)).empty());

    // Without CHAP in the config: enforce off first, then the credentials unset.
    auto open = plan_discovery_auth(std::nullopt, observe_lio(tree));
    BOOST_TEST_REQUIRE(open.size() == 3u);
    BOOST_TEST(open[0].value == "0");
    BOOST_TEST(open[1].value == "NULL");
}

BOOST_FIXTURE_TEST_CASE(a_failing_step_undoes_what_the_run_created, TempRoot) {
    // The TPG directory already exists as a file: mkdir fails after the target dir was made.
    auto spec = volume_spec();
    fs::create_directories(root / "core" / "iblock_57");
    auto ops = plan_target(spec, observe_lio(tree));
    // Make the first op that creates the target fail by putting a file where the tpg goes.
    fs::create_directories(root / "iscsi");
    std::vector<ConfigfsOp> partial;
    for (const auto& op : ops) {
        partial.push_back(op);
        if (op.path == fs::path("iscsi") / spec.iqn / "tpgt_1") break;
    }
    partial.push_back({Kind::MakeDir, fs::path("iscsi") / spec.iqn / "tpgt_1", {}, {}, false, "again"});
    auto st = apply_ops(tree, std::vector<ConfigfsOp>(partial.end() - 3, partial.end()), "volume xpsp2-01");
    BOOST_TEST_REQUIRE(!st.ok());
    BOOST_TEST(st.error().code == EEXIST);
    BOOST_TEST(st.error().message.find("volume xpsp2-01: mkdir iscsi/") == 0u);
    BOOST_TEST(!fs::exists(root / "iscsi" / spec.iqn / "tpgt_1"));
}

BOOST_FIXTURE_TEST_CASE(removal_disables_first_and_keeps_order, TempRoot) {
    auto spec = volume_spec();
    BOOST_TEST_REQUIRE(apply_ops(tree, plan_target(spec, observe_lio(tree)), "v").ok());
    auto ops = plan_remove_target(spec.iqn, spec.storage, observe_lio(tree));
    BOOST_TEST_REQUIRE(!ops.empty());
    BOOST_TEST(ops.front().path.filename() == "enable");
    BOOST_TEST(ops.front().value == "0");
    auto map = index_of(ops, "lun_0/map", Kind::RemoveLink);
    auto lun = index_of(ops, "lun/lun_0", Kind::RemoveDir);
    auto tpg = index_of(ops, "tpgt_1", Kind::RemoveDir);
    auto so = index_of(ops, "core/iblock_57/xpsp2-01", Kind::RemoveDir);
    BOOST_TEST(map < lun);
    BOOST_TEST(lun < tpg);
    BOOST_TEST(so == static_cast<std::ptrdiff_t>(ops.size()) - 1);
}

BOOST_AUTO_TEST_CASE(an_hba_left_without_storage_objects_is_not_made_again) {
    // The kernel keeps core/iblock_57 after its last storage object is
    // removed; mkdir of it again would fail with EEXIST.
    LioState observed;
    observed.present = true;
    observed.hbas = {"iblock_57"};
    TargetSpec spec;
    spec.iqn = "iqn.2026-11.org.example:g:vol1";
    spec.storage.name = "vol1";
    spec.storage.device = "/dev/sanpool/vol1";
    spec.storage.serial = "0123456789abcdef0123456789abcdef";
    spec.portals = {"127.0.0.1:3260"};
    auto ops = plan_target(spec, observed);
    BOOST_TEST_REQUIRE(!ops.empty());
    BOOST_TEST(ops[0].path == std::filesystem::path("core/iblock_57/vol1"));
}
