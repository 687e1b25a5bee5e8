#include <boost/test/unit_test.hpp>

#include <fstream>
#include <map>
#include <sstream>

#include "sanagent/agent/lvm_modules.h"
#include "config_text.h"

using namespace sanagent;
using namespace sanagent::agent;

namespace {

std::string fixture(const std::string& name) {
    std::ifstream in(std::string(SANAGENT_FIXTURES) + "/lvm/" + name);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Replays the recorded lvm reports; records every other command and succeeds.
class LvmRecorder : public CommandRunner {
public:
    std::vector<std::string> changes;
    Result<CommandOutput> run(const Command& c) override {
        if (c.display() == lvm::vgs_report_command().display()) return CommandOutput{0, fixture("vgs.json"), ""};
        if (c.display() == lvm::lvs_report_command().display()) return CommandOutput{0, fixture("lvs.json"), ""};
        changes.push_back(c.display());
        return CommandOutput{0, "", ""};
    }
};

using sanagent::agent::test::parse;

const std::string kNode = "[node]\nname = \"n1\"\nroles = [\"storage\"]\n";
const std::string kPool = "[pool.default]\nvg = \"sanpool\"\ndevices = [\"/dev/vda\"]\n";

struct Fixture {
    std::shared_ptr<LvmRecorder> runner = std::make_shared<LvmRecorder>();
    std::map<std::string, std::vector<lvm::DeviceSignature>> disks;
    PoolModule pool{runner, [this](const std::string& d) -> Result<std::vector<lvm::DeviceSignature>> {
                        return disks[d];
                    }};
    VolumeModule volume{runner};
    Ownership owned;

    std::vector<Step> plan(const Config& config) {
        BOOST_TEST_REQUIRE(pool.observe().ok());
        BOOST_TEST_REQUIRE(volume.observe().ok());
        auto steps = pool.plan(config, owned);
        auto more = volume.plan(config, owned);
        steps.insert(steps.end(), more.begin(), more.end());
        return steps;
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(lvm_modules)

BOOST_FIXTURE_TEST_CASE(the_recorded_node_is_converged, Fixture) {
    auto config = parse(kNode + kPool + "[volume.vol1]\nsize = \"1G\"\n");
    BOOST_TEST(plan(config).empty());
}

BOOST_FIXTURE_TEST_CASE(a_new_volume_and_a_clone_of_it_in_order, Fixture) {
    auto config = parse(kNode + kPool +
                        "[volume.vm-clone]\nsize = \"1G\"\nclone = { from = \"golden\" }\n"
                        "[volume.golden]\nsize = \"1G\"\n");
    auto steps = plan(config);
    BOOST_TEST_REQUIRE(steps.size() == 2u);
    BOOST_TEST(steps[0].object == "volume/golden");
    BOOST_TEST(steps[1].object == "volume/vm-clone");
    BOOST_TEST(steps[0].claims);
    BOOST_TEST(static_cast<bool>(steps[0].undo));
}

BOOST_FIXTURE_TEST_CASE(a_new_pool_on_a_used_disk_fails_with_what_is_on_it, Fixture) {
    disks["/dev/vdb"] = {{"xfs", "filesystem", "backup"}};
    auto config = parse(kNode + "[pool.second]\nvg = \"pool2\"\ndevices = [\"/dev/vdb\"]\n");
    auto steps = plan(config);
    BOOST_TEST_REQUIRE(steps.size() == 1u);
    auto st = steps[0].apply();
    BOOST_TEST_REQUIRE(!st.ok());
    BOOST_TEST(st.error().message.find("/dev/vdb holds xfs (filesystem)") != std::string::npos);
    BOOST_TEST(runner->changes.empty());
}

BOOST_FIXTURE_TEST_CASE(a_host_plans_no_storage, Fixture) {
    auto config = parse("[node]\nname = \"h1\"\nroles = [\"host\"]\n" + kPool + "[volume.vm9]\nsize = \"1G\"\n");
    BOOST_TEST(plan(config).empty());
}

BOOST_FIXTURE_TEST_CASE(a_volume_gone_from_the_config_is_orphaned_not_removed, Fixture) {
    owned.claim("volume/vol1", "volume");
    auto config = parse(kNode + kPool);
    BOOST_TEST(plan(config).empty());
    auto statuses = volume.status(config, owned);
    BOOST_TEST_REQUIRE(statuses.size() == 1u);
    BOOST_TEST(statuses[0].object == "volume/vol1");
    BOOST_TEST((statuses[0].health == Health::orphaned));
}

BOOST_FIXTURE_TEST_CASE(a_volume_group_made_by_someone_else_is_foreign, Fixture) {
    auto config = parse(kNode + kPool);
    plan(config);
    auto statuses = pool.status(config, owned);  // the recorded VG has no sanagent tag
    BOOST_TEST_REQUIRE(statuses.size() == 1u);
    BOOST_TEST((statuses[0].health == Health::foreign));
}

BOOST_FIXTURE_TEST_CASE(pool_status_reports_use_and_subscription, Fixture) {
    owned.claim("pool/default", "pool");
    auto config = parse(kNode + kPool);
    plan(config);
    auto statuses = pool.status(config, owned);
    BOOST_TEST_REQUIRE(statuses.size() == 1u);
    BOOST_TEST(statuses[0].actual.find("subscribed") != std::string::npos);
    BOOST_TEST((statuses[0].health == Health::ok));
}

BOOST_AUTO_TEST_CASE(a_clone_of_an_undeclared_volume_is_a_config_error) {
    auto config = parse(kNode + kPool + "[volume.vm1]\nsize = \"1G\"\nclone = { from = \"nowhere\" }\n");
    Diagnostics diagnostics;
    VolumeModule(std::make_shared<LvmRecorder>()).validate(config, diagnostics);
    BOOST_TEST_REQUIRE(diagnostics.size() == 1u);
    BOOST_TEST(diagnostics.text().find("test.conf:") == 0u);
    BOOST_TEST(diagnostics.text().find("clone source \"nowhere\" is not a [volume]") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(lvm_modules_more)

BOOST_FIXTURE_TEST_CASE(a_golden_image_and_its_clone_in_one_config, Fixture) {
    auto config = parse(kNode + kPool + "[volume.gold2]\nsize = \"1G\"\n[volume.vm2]\nsize = \"1G\"\nclone = { from = \"gold2\" }\n");
    auto steps = plan(config);
    BOOST_TEST_REQUIRE(steps.size() == 2u);
    BOOST_TEST(steps[1].object == "volume/vm2");
    BOOST_TEST(steps[1].action.find("clone sanpool/vm2 from gold2") == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
