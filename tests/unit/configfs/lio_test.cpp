#define BOOST_TEST_MODULE configfs
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>

#include "sanagent/configfs/lio.h"

namespace fs = std::filesystem;
using namespace sanagent::configfs;

namespace {

// A temporary directory shaped like /sys/kernel/config/target, removed after.
struct FakeTargetRoot {
    fs::path root = fs::temp_directory_path() / ("sanagent-configfs-" + std::to_string(::getpid()));
    ConfigfsTree tree{root, ConfigfsTree::Backing::PlainDirectory};
    FakeTargetRoot() {
        fs::remove_all(root);
        fs::create_directories(root);
    }
    ~FakeTargetRoot() { fs::remove_all(root); }
    void write(const fs::path& rel, const std::string& text) {
        fs::create_directories((root / rel).parent_path());
        std::ofstream(root / rel) << text << "\n";
    }
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(absent_root_is_reported_not_failed, FakeTargetRoot) {
    fs::remove_all(root);
    auto state = observe_lio(tree);
    BOOST_TEST(!state.present);
}

BOOST_FIXTURE_TEST_CASE(reads_a_target_with_lun_and_acl, FakeTargetRoot) {
    write("version", "Target Engine Core ConfigFS Infrastructure v5.0");
    write("dbroot", "/var/lib/sanagent/target");
    write("core/fileio_0/disk0/enable", "1");
    write("core/fileio_0/disk0/udev_path", "/srv/disk0.img");
    write("core/fileio_0/disk0/wwn/vpd_unit_serial", "T10 VPD Unit Serial Number: 5a0b3c");
    const fs::path tpg = "iscsi/iqn.2026-11.org.example:g:vol1/tpgt_1";
    write(tpg / "enable", "1");
    fs::create_directories(root / tpg / "np" / "127.0.0.1:3260");
    fs::create_directories(root / tpg / "lun" / "lun_0");
    BOOST_TEST_REQUIRE(tree.make_link("core/fileio_0/disk0", tpg / "lun/lun_0/7c1a2b").ok());
    fs::create_directories(root / tpg / "acls" / "iqn.2026-11.org.example:host1" / "lun_0");
    BOOST_TEST_REQUIRE(tree.make_link(tpg / "lun/lun_0", tpg / "acls/iqn.2026-11.org.example:host1/lun_0/map").ok());
    fs::create_directories(root / "iscsi" / "discovery_auth");

    auto state = observe_lio(tree);
    BOOST_TEST(state.present);
    BOOST_TEST(state.dbroot == "/var/lib/sanagent/target");
    BOOST_TEST_REQUIRE(state.storage_objects.size() == 1u);
    BOOST_TEST(state.storage_objects[0].plugin == "fileio");
    BOOST_TEST(state.storage_objects[0].enabled);
    BOOST_TEST(state.storage_objects[0].serial == "5a0b3c");
    BOOST_TEST_REQUIRE(state.iscsi_targets.size() == 1u);  // discovery_auth is not a target
    const auto& t = state.iscsi_targets[0];
    BOOST_TEST(t.iqn == "iqn.2026-11.org.example:g:vol1");
    BOOST_TEST_REQUIRE(t.tpgs.size() == 1u);
    BOOST_TEST(t.tpgs[0].tag == 1u);
    BOOST_TEST(t.tpgs[0].enabled);
    BOOST_TEST(t.tpgs[0].portals == std::vector<std::string>{"127.0.0.1:3260"});
    BOOST_TEST_REQUIRE(t.tpgs[0].luns.size() == 1u);
    BOOST_TEST(t.tpgs[0].luns[0].storage_object == "fileio_0/disk0");
    BOOST_TEST_REQUIRE(t.tpgs[0].acls.size() == 1u);
    BOOST_TEST(t.tpgs[0].acls[0].initiator_iqn == "iqn.2026-11.org.example:host1");
    BOOST_TEST_REQUIRE(t.tpgs[0].acls[0].mapped_luns.size() == 1u);
    BOOST_TEST(t.tpgs[0].acls[0].mapped_luns[0].target_lun == "lun_0");
}

// LioDepth::plan reads less (no storage object enable/udev_path; sanagent's
// "map" links settle an ACL) but sees the same targets, ACLs, CHAP and links;
// a mapped LUN made by targetcli (random link name) falls back to listing.
BOOST_FIXTURE_TEST_CASE(plan_depth_sees_what_the_plan_compares, FakeTargetRoot) {
    write("core/fileio_1/v1/enable", "1");
    write("core/fileio_1/v1/udev_path", "/srv/v1.img");
    write("core/fileio_1/v1/wwn/vpd_unit_serial", "T10 VPD Unit Serial Number: 0a1b");
    write("core/fileio_1/v1/attrib/emulate_tpu", "1");
    const fs::path tpg = "iscsi/iqn.2026-11.org.example:g:v1/tpgt_1";
    write(tpg / "enable", "1");
    write(tpg / "attrib/authentication", "1");
    fs::create_directories(root / tpg / "np" / "127.0.0.1:3260");
    fs::create_directories(root / tpg / "lun" / "lun_0");
    // configfs answers readlink with a relative target.
    fs::create_symlink("../../../../../core/fileio_1/v1", root / tpg / "lun/lun_0/v1");
    const std::string a = "iqn.2026-11.org.example:a", b = "iqn.2026-11.org.example:b";
    write(tpg / "acls" / a / "auth/userid", "a");
    write(tpg / "acls" / a / "auth/password", "NULL");
    fs::create_directories(root / tpg / "acls" / a / "lun_0");
    fs::create_symlink("../../../lun/lun_0", root / tpg / "acls" / a / "lun_0/map");
    fs::create_directories(root / tpg / "acls" / b / "lun_0");
    fs::create_symlink("../../../lun/lun_0", root / tpg / "acls" / b / "lun_0/3f2a1b9c");

    const auto full = observe_lio(tree, LioDepth::full);
    const auto plan = observe_lio(tree, LioDepth::plan);
    BOOST_TEST(full.storage_objects.at(0).udev_path == "/srv/v1.img");
    BOOST_TEST(plan.storage_objects.at(0).udev_path.empty());
    BOOST_TEST(plan.storage_objects.at(0).serial == "0a1b");
    BOOST_TEST(plan.storage_objects.at(0).attributes.at("emulate_tpu") == "1");
    for (const auto* state : {&full, &plan}) {
        const auto* t = find_target(*state, "iqn.2026-11.org.example:g:v1");
        BOOST_TEST_REQUIRE(t);
        BOOST_TEST_REQUIRE(t->tpgs.size() == 1u);
        const auto& g = t->tpgs[0];
        BOOST_TEST(g.enabled);
        BOOST_TEST(g.attributes.at("authentication") == "1");
        BOOST_TEST_REQUIRE(g.luns.size() == 1u);
        BOOST_TEST(g.luns[0].storage_object == "fileio_1/v1");
        BOOST_TEST_REQUIRE(g.acls.size() == 2u);
        BOOST_TEST(g.acls[0].chap.userid == "a");
        BOOST_TEST(g.acls[0].chap.password.empty());  // "NULL" is unset
        for (const auto& acl : g.acls) {
            BOOST_TEST_REQUIRE(acl.mapped_luns.size() == 1u);
            BOOST_TEST(acl.mapped_luns[0].name == "lun_0");
            BOOST_TEST(acl.mapped_luns[0].target_lun == "lun_0");
        }
        BOOST_TEST(g.acls[1].mapped_luns[0].link_name == "3f2a1b9c");
        BOOST_TEST(find_storage_object(*state, "fileio_1", "v1"));
        BOOST_TEST(!find_storage_object(*state, "fileio_1", "v2"));
        BOOST_TEST(has_hba(*state, "fileio_1"));
        BOOST_TEST(!has_hba(*state, "fileio_"));
    }
}

BOOST_FIXTURE_TEST_CASE(errors_name_the_path_and_errno, FakeTargetRoot) {
    BOOST_TEST_REQUIRE(tree.make_dir("iscsi").ok());
    auto again = tree.make_dir("iscsi");
    BOOST_TEST_REQUIRE(!again.ok());
    BOOST_TEST(again.error().code == EEXIST);
    BOOST_TEST(again.error().message.find((root / "iscsi").string()) != std::string::npos);
}

BOOST_FIXTURE_TEST_CASE(a_failed_write_never_echoes_the_value, FakeTargetRoot) {
    ConfigfsTree kernel_backed{root};  // no O_CREAT: a missing attribute fails as in configfs
    auto st = kernel_backed.write_attr("no/such/dir/auth/password", "s3cret-chap");
    BOOST_TEST_REQUIRE(!st.ok());
    BOOST_TEST(st.error().message.find("s3cret-chap") == std::string::npos);
}

BOOST_FIXTURE_TEST_CASE(logged_in_initiators_read_acl_info_and_dynamic_sessions, FakeTargetRoot) {
    const fs::path tpg = "iscsi/iqn.2026-11.org.example:g:vol1/tpgt_1";
    write(tpg / "acls/iqn.2026-11.org.example:idle/info",
          "No active iSCSI Session for Initiator Endpoint: iqn.2026-11.org.example:idle");
    write(tpg / "acls/iqn.2026-11.org.example:busy/info",
          "InitiatorName: iqn.2026-11.org.example:busy\nInitiatorAlias: h1\n"
          "Session State: TARG_SESS_STATE_LOGGED_IN");
    write(tpg / "dynamic_sessions", "");
    BOOST_TEST(logged_in_initiators(tree, "iqn.2026-11.org.example:g:vol1") ==
               std::vector<std::string>{"iqn.2026-11.org.example:busy"});
    write(tpg / "dynamic_sessions", "iqn.2026-11.org.example:demo");
    BOOST_TEST(logged_in_initiators(tree, "iqn.2026-11.org.example:g:vol1").size() == 2u);
    // An ACL whose info cannot be read counts as logged in: refusing is safe.
    fs::create_directories(root / tpg / "acls/iqn.2026-11.org.example:unknown");
    BOOST_TEST(logged_in_initiators(tree, "iqn.2026-11.org.example:g:vol1").size() == 3u);
    BOOST_TEST(logged_in_initiators(tree, "iqn.2026-11.org.example:g:none").empty());
}
