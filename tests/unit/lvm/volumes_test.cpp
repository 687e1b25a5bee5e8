#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "sanagent/lvm/volumes.h"

using namespace sanagent;
using namespace sanagent::lvm;

namespace {

std::string read_fixture(const std::string& name) {
    std::ifstream in(std::string(SANAGENT_FIXTURES) + "/lvm/" + name);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

struct Recorded {
    std::vector<VolumeGroupState> vgs = *parse_vgs_report(read_fixture("vgs.json"));
    std::vector<LogicalVolumeState> lvs = *parse_lvs_report(read_fixture("lvs.json"));
    PoolSpec pool{"sanpool", {"/dev/vda"}, "thin", 90, false};
};

bool has_arg(const LvmStep& s, const std::string& arg) {
    return std::find(s.command.argv.begin(), s.command.argv.end(), arg) != s.command.argv.end();
}

constexpr std::uint64_t MiB = 1024 * 1024;
constexpr std::uint64_t GiB = 1024 * MiB;

}  // namespace

BOOST_AUTO_TEST_CASE(a_new_pool_on_blank_devices) {
    PoolSpec pool{"sanpool", {"/dev/sdb", "/dev/sdc"}, "thin", 90, false};
    auto steps = plan_pool(pool, {}, {}, {{"/dev/sdb", {}}, {"/dev/sdc", {}}});
    BOOST_TEST_REQUIRE(steps.ok());
    BOOST_TEST_REQUIRE(steps->size() == 5u);
    BOOST_TEST((*steps)[0].command.display() == "lvm pvcreate /dev/sdb");
    BOOST_TEST((*steps)[2].command.display() == "lvm vgcreate --addtag sanagent sanpool /dev/sdb /dev/sdc");
    BOOST_TEST(has_arg((*steps)[3], "thin-pool"));
    BOOST_TEST((*steps)[4].command.display() == "lvm lvchange --errorwhenfull y sanpool/thin");
}

BOOST_AUTO_TEST_CASE(a_device_with_a_signature_is_refused_with_what_it_holds) {
    PoolSpec pool{"sanpool", {"/dev/sdb", "/dev/sdc"}, "thin", 90, false};
    auto steps = plan_pool(pool, {}, {},
                           {{"/dev/sdb", {{"ext4", "filesystem", "data"}}}, {"/dev/sdc", {{"gpt", "partition table", ""}}}});
    BOOST_TEST_REQUIRE(!steps.ok());
    const auto& msg = steps.error().message;
    BOOST_TEST(msg.find("/dev/sdb holds ext4 (filesystem)") != std::string::npos);
    BOOST_TEST(msg.find("/dev/sdc holds gpt (partition table)") != std::string::npos);
    BOOST_TEST(msg.find("force = true") != std::string::npos);

    pool.force = true;
    auto forced = plan_pool(pool, {}, {}, {{"/dev/sdb", {{"ext4", "filesystem", ""}}}});
    BOOST_TEST_REQUIRE(forced.ok());
    BOOST_TEST(has_arg((*forced)[0], "-ff"));
}

BOOST_FIXTURE_TEST_CASE(recorded_pool_is_complete, Recorded) {
    auto steps = plan_pool(pool, vgs, lvs, {});
    BOOST_TEST_REQUIRE(steps.ok());
    BOOST_TEST(steps->empty());
}

BOOST_FIXTURE_TEST_CASE(sizes_round_up_to_whole_extents, Recorded) {
    BOOST_TEST_REQUIRE(vgs[0].extent_size_bytes == 4 * MiB);
    auto steps = plan_volume(pool, {"vm1", 10 * GiB + 1, true, std::nullopt, false}, vgs, lvs);
    BOOST_TEST_REQUIRE(steps.ok());
    BOOST_TEST_REQUIRE(steps->size() == 1u);
    BOOST_TEST(has_arg((*steps)[0], std::to_string(10 * GiB + 4 * MiB) + "b"));
    BOOST_TEST(has_arg((*steps)[0], "sanpool/thin"));
}

BOOST_FIXTURE_TEST_CASE(an_existing_volume_of_the_same_size_plans_nothing, Recorded) {
    auto steps = plan_volume(pool, {"vol1", 1 * GiB, true, std::nullopt, false}, vgs, lvs);
    BOOST_TEST_REQUIRE(steps.ok());
    BOOST_TEST(steps->empty());
}

BOOST_FIXTURE_TEST_CASE(growing_extends, Recorded) {
    auto steps = plan_volume(pool, {"vol1", 2 * GiB, true, std::nullopt, false}, vgs, lvs);
    BOOST_TEST_REQUIRE(steps.ok());
    BOOST_TEST_REQUIRE(steps->size() == 1u);
    BOOST_TEST((*steps)[0].command.display() == "lvm lvextend --size 2147483648b sanpool/vol1");
}

BOOST_FIXTURE_TEST_CASE(shrinking_is_refused_unless_forced, Recorded) {
    auto refused = plan_volume(pool, {"vol1", 512 * MiB, true, std::nullopt, false}, vgs, lvs);
    BOOST_TEST_REQUIRE(!refused.ok());
    BOOST_TEST(refused.error().message ==
               "volume vol1: shrinking from 1 GiB to 512 MiB would lose the data past 512 MiB; refusing (shrink it "
               "with sanctl volume resize --force)");
    auto forced = plan_volume(pool, {"vol1", 512 * MiB, true, std::nullopt, true}, vgs, lvs);
    BOOST_TEST_REQUIRE(forced.ok());
    BOOST_TEST(has_arg((*forced)[0], "lvreduce"));
}

BOOST_FIXTURE_TEST_CASE(provisioning_cannot_change_in_place, Recorded) {
    auto r = plan_volume(pool, {"vol1", 1 * GiB, false, std::nullopt, false}, vgs, lvs);
    BOOST_TEST_REQUIRE(!r.ok());
    BOOST_TEST(r.error().message.find("is thin but the config says full") != std::string::npos);
}

BOOST_FIXTURE_TEST_CASE(a_full_volume_reserves_and_wipes, Recorded) {
    auto steps = plan_volume(pool, {"db1", 64 * MiB, false, std::nullopt, false}, vgs, lvs);
    BOOST_TEST_REQUIRE(steps.ok());
    BOOST_TEST((*steps)[0].command.display() ==
               "lvm lvcreate --size 67108864b --wipesignatures y --yes --addtag sanagent --name db1 sanpool");
}

BOOST_FIXTURE_TEST_CASE(a_clone_is_a_thin_snapshot_of_its_source, Recorded) {
    auto steps = plan_volume(pool, {"vm7", 1 * GiB, true, CloneSource{"vol1", "vol1-snap"}, false}, vgs, lvs);
    BOOST_TEST_REQUIRE(steps.ok());
    BOOST_TEST((*steps)[0].command.display() ==
               "lvm lvcreate --snapshot --setactivationskip n --addtag sanagent --name vm7 sanpool/vol1-snap");
    auto missing = plan_volume(pool, {"vm8", 1 * GiB, true, CloneSource{"golden", ""}, false}, vgs, lvs);
    BOOST_TEST_REQUIRE(!missing.ok());
    BOOST_TEST(missing.error().message == "volume vm8: clone source sanpool/golden does not exist");
}

BOOST_FIXTURE_TEST_CASE(reserved_space_follows_the_storage_model, Recorded) {
    LogicalVolumeState full;
    full.attr = "-wi-a-----";
    full.size_bytes = 10 * GiB;
    BOOST_TEST(reserved_bytes(full, 2) == 20 * GiB);
    LogicalVolumeState thin;
    thin.attr = "Vwi-a-tz--";
    thin.size_bytes = 10 * GiB;
    thin.data_percent = 10.0;
    BOOST_TEST(reserved_bytes(thin, 2) == 2 * GiB);
}

BOOST_AUTO_TEST_CASE(rollback_copies_the_snapshot_merges_it_and_renames_the_copy_back) {
    // lvconvert --merge consumes the snapshot: a copy with its tags, under a
    // name no user snapshot can have, takes its place afterwards.
    BOOST_TEST(rollback_lv_name("vol1") == "vol1+_rollback");
    BOOST_TEST(rollback_copy_step("sanpool", "vol1", "vol1+before", {"sanagent", "sanagent-auto"}).command.display() ==
               "lvm lvcreate --snapshot --addtag sanagent --addtag sanagent-auto --name vol1+_rollback "
               "sanpool/vol1+before");
    BOOST_TEST(merge_step("sanpool", "vol1+before").command.display() ==
               "lvm lvconvert --merge --yes sanpool/vol1+before");
    BOOST_TEST(rename_step("sanpool", "vol1+_rollback", "vol1+before").command.display() ==
               "lvm lvrename sanpool vol1+_rollback vol1+before");
    BOOST_TEST(activate_step("sanpool", "vol1", true).command.display() == "lvm lvchange --activate y sanpool/vol1");
    LogicalVolumeState lv;
    lv.attr = "Vwi-aotz--";
    BOOST_TEST(lv.is_open());
    lv.attr = "Vwi-a-tz--";
    BOOST_TEST(!lv.is_open());
}
