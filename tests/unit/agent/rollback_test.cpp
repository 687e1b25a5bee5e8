// sanctl snapshot rollback's steps against a fake lvm and a temporary tree
// shaped like configfs: refused while logged in, the order of the steps, and
// every failure before the merge leaving the volume exported with its content.
#include <boost/test/unit_test.hpp>

#include <sstream>

#include "sanagent/agent/target_module.h"
#include "sanagent/agent/volume_commands.h"
#include "sanagent/configfs/target_plan.h"
#include "test_dir.h"
#include "config_text.h"

using namespace sanagent;
using namespace sanagent::agent;
namespace fs = std::filesystem;

namespace {

// Answers `lvm lvs` from `lvs` (as lvm's JSON), records every other command,
// and fails the first command whose text contains `fail_on`. A merge takes
// the snapshot out of `lvs`, as lvm does.
class FakeLvm : public CommandRunner {
public:
    std::vector<std::string> ran;
    std::string fail_on;
    bool volume_open = false;
    std::vector<std::string> lvs{"vol1", "vol1+before"};
    Result<CommandOutput> run(const Command& c) override {
        const std::string text = c.display();
        if (text == lvm::lvs_report_command().display()) {
            std::string json = "{\"report\":[{\"lv\":[";
            for (std::size_t i = 0; i < lvs.size(); ++i)
                json += std::string(i ? "," : "") + "{\"vg_name\":\"sanpool\",\"lv_name\":\"" + lvs[i] +
                        "\",\"lv_uuid\":\"u\",\"lv_attr\":\"" +
                        (lvs[i] == "vol1" && volume_open ? "Vwi-aotz--" : "Vwi-a-tz--") +
                        "\",\"lv_size\":\"67108864\",\"pool_lv\":\"thin\",\"origin\":\"\",\"data_percent\":\"1.00\","
                        "\"metadata_percent\":\"\",\"lv_tags\":\"sanagent\",\"lv_when_full\":\"\"}";
            return CommandOutput{0, json + "]}]}", ""};
        }
        ran.push_back(text);
        if (!fail_on.empty() && text.find(fail_on) != std::string::npos) return CommandOutput{5, "", "lvm says no"};
        if (text.find("lvconvert --merge") != std::string::npos) std::erase(lvs, "vol1+before");
        return CommandOutput{0, "", ""};
    }
};

using sanagent::agent::test::parse;

const std::string kIqn = "iqn.2026-11.org.example:g:vol1";
const std::string kHost = "iqn.2026-11.org.example:xs01";

struct Rollback {
    test::TempDir dir;
    configfs::ConfigfsTree tree{dir.root / "target", configfs::ConfigfsTree::Backing::PlainDirectory};
    Config config = parse(
        "[node]\nname = \"n1\"\nroles = [\"storage\"]\nportals = [\"127.0.0.1\"]\n"
        "[group]\nname = \"g\"\niqn_prefix = \"iqn.2026-11.org.example\"\n"
        "[server.xs01]\niqn = \"" + kHost + "\"\n[pool.default]\nvg = \"sanpool\"\n"
        "[volume.vol1]\nsize = \"64M\"\nservers = [\"xs01\"]\n");
    FakeLvm lvm;
    lvm::LogicalVolumeState snapshot;
    std::ostringstream out;

    Rollback() {
        snapshot.vg = "sanpool";
        snapshot.name = "vol1+before";
        snapshot.tags = {"sanagent"};
        auto spec = TargetModule::target_spec(config, "vol1");
        BOOST_TEST_REQUIRE(spec.ok());
        BOOST_TEST_REQUIRE(configfs::apply_ops(tree, configfs::plan_target(*spec, configfs::observe_lio(tree)), "t").ok());
        session(false);
    }
    void session(bool logged_in) {
        dir.write("target/iscsi/" + kIqn + "/tpgt_1/acls/" + kHost + "/info",
                  logged_in ? "InitiatorName: " + kHost + "\nSession State: TARG_SESS_STATE_LOGGED_IN\n"
                            : "No active iSCSI Session for Initiator Endpoint: " + kHost + "\n");
    }
    Status run(bool force = false) {
        return rollback_volume(lvm, tree, config, "sanpool", "vol1", snapshot, force, out);
    }
    bool exported() {
        return tree.read_attr("iscsi/" + kIqn + "/tpgt_1/enable").value_or("") == "1" &&
               fs::exists(dir.root / "target/core/iblock_57/vol1");
    }
    std::string serial() { return tree.read_attr("core/iblock_57/vol1/wwn/vpd_unit_serial").value_or("?"); }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(rollback)

BOOST_FIXTURE_TEST_CASE(refused_while_an_initiator_is_logged_in, Rollback) {
    session(true);
    auto st = run();
    BOOST_TEST_REQUIRE(!st.ok());
    BOOST_TEST(st.error().message.find("initiators are logged in to " + kIqn + ": " + kHost) == 0u);
    BOOST_TEST(lvm.ran.empty());
    BOOST_TEST(exported());
}

BOOST_FIXTURE_TEST_CASE(a_replicated_volume_is_not_rolled_back, Rollback) {
    config = parse(
        "[node]\nname = \"n1\"\nroles = [\"storage\"]\nportals = [\"127.0.0.1\"]\n"
        "[group]\nname = \"g\"\niqn_prefix = \"iqn.2026-11.org.example\"\n"
        "[server.xs01]\niqn = \"" + kHost + "\"\n[pool.default]\nvg = \"sanpool\"\n"
        "[volume.vol1]\nsize = \"64M\"\nservers = [\"xs01\"]\nreplication = 2\n");
    auto st = run(true);
    BOOST_TEST_REQUIRE(!st.ok());
    BOOST_TEST(st.error().message.find("is replicated") != std::string::npos, st.error().message);
    BOOST_TEST(lvm.ran.empty());
    BOOST_TEST(exported());
}

BOOST_FIXTURE_TEST_CASE(copies_takes_the_export_down_merges_and_brings_it_back, Rollback) {
    const std::string before = serial();
    session(true);
    auto st = run(true);  // --force
    BOOST_TEST_REQUIRE(st.ok(), (st ? std::string() : st.error().message));
    BOOST_TEST(lvm.ran == (std::vector<std::string>{
                              "lvm lvcreate --snapshot --addtag sanagent --name vol1+_rollback sanpool/vol1+before",
                              "lvm lvconvert --merge --yes sanpool/vol1+before",
                              "lvm lvchange --activate y sanpool/vol1",
                              "lvm lvrename sanpool vol1+_rollback vol1+before",
                          }));
    BOOST_TEST(exported());
    BOOST_TEST(serial() == before);  // the host sees the same disk
    BOOST_TEST(out.str().find("dropping the sessions of " + kHost) != std::string::npos);
}

BOOST_FIXTURE_TEST_CASE(a_failed_merge_leaves_the_volume_exported_and_removes_the_copy, Rollback) {
    lvm.fail_on = "lvconvert";
    auto st = run();
    BOOST_TEST_REQUIRE(!st.ok());
    BOOST_TEST(st.error().message.find("the volume keeps its content") != std::string::npos);
    BOOST_TEST(lvm.ran.back() == "lvm lvremove --yes sanpool/vol1+_rollback");
    BOOST_TEST(exported());
}

BOOST_FIXTURE_TEST_CASE(a_volume_still_open_is_not_merged, Rollback) {
    lvm.volume_open = true;  // something else holds it after the export went down
    auto st = run();
    BOOST_TEST_REQUIRE(!st.ok());
    BOOST_TEST(st.error().message.find("is still open") != std::string::npos);
    for (const auto& c : lvm.ran) BOOST_TEST(c.find("lvconvert") == std::string::npos);
    BOOST_TEST(exported());
}

BOOST_FIXTURE_TEST_CASE(a_failed_copy_changes_nothing, Rollback) {
    lvm.fail_on = "lvcreate";
    BOOST_TEST(!run().ok());
    BOOST_TEST(lvm.ran.size() == 1u);
    BOOST_TEST(exported());
}

BOOST_AUTO_TEST_SUITE_END()
