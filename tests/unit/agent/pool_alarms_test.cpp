#include <boost/test/unit_test.hpp>

#include <ostream>

#include "sanagent/agent/pool_alarms.h"
#include "sanagent/agent/snapshot_schedule.h"
#include "sanagent/agent/lvm_modules.h"
#include "test_dir.h"
#include "config_text.h"

using namespace sanagent;
using namespace sanagent::agent;
using namespace std::chrono_literals;

namespace sanagent::agent {
std::ostream& operator<<(std::ostream& out, AlarmLevel level) {
    return out << alarm_level_name(level);
}
}  // namespace sanagent::agent

namespace {

using sanagent::agent::test::parse;

// Records each command (with its environment) and answers with `exit_code`.
class FakeRunner : public CommandRunner {
public:
    std::vector<Command> ran;
    int exit_code = 0;
    Result<CommandOutput> run(const Command& c) override {
        ran.push_back(c);
        return CommandOutput{exit_code, "", exit_code ? "mail: no route" : ""};
    }
};

lvm::LogicalVolumeState thin_pool(double data, double meta) {
    lvm::LogicalVolumeState lv;
    lv.vg = "sanpool";
    lv.name = "thin";
    lv.attr = "twi-aotz--";
    lv.data_percent = data;
    lv.metadata_percent = meta;
    return lv;
}

const std::string kConfig =
    "[node]\nname = \"n1\"\nroles = [\"storage\"]\n"
    "[agent]\nalert_command = [\"/usr/local/bin/page\", \"--team\", \"storage\"]\n"
    "[pool.default]\nvg = \"sanpool\"\nwarn_at = \"80%\"\ncritical_at = \"90%\"\n";

bool has_env(const Command& c, const std::string& entry) {
    return std::find(c.extra_env.begin(), c.extra_env.end(), entry) != c.extra_env.end();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(pool_alarms)

BOOST_AUTO_TEST_CASE(levels_follow_the_thresholds) {
    BOOST_TEST(level_of(79.9, 80, 90) == AlarmLevel::ok);
    BOOST_TEST(level_of(80, 80, 90) == AlarmLevel::warning);
    BOOST_TEST(level_of(95, 80, 90) == AlarmLevel::critical);
}

BOOST_AUTO_TEST_CASE(a_crossing_is_reported_once_and_runs_the_command_once) {
    test::TempDir dir;
    auto config = parse(kConfig);
    FakeRunner runner;
    std::vector<std::string> logged;
    AlarmLog log = [&](bool, const std::string& m, const std::string&) { logged.push_back(m); };

    BOOST_TEST(check_pool_alarms(config, {thin_pool(50, 5)}, dir.root, runner, log).empty());
    auto events = check_pool_alarms(config, {thin_pool(85, 5)}, dir.root, runner, log);
    BOOST_TEST_REQUIRE(events.size() == 1u);
    BOOST_TEST(events[0].metric == "data");
    BOOST_TEST(events[0].level == AlarmLevel::warning);
    BOOST_TEST_REQUIRE(runner.ran.size() == 1u);
    const Command& c = runner.ran[0];
    BOOST_TEST(c.display() == "/usr/local/bin/page --team storage");
    BOOST_TEST(c.timeout.count() == std::chrono::milliseconds(kAlertTimeout).count());
    BOOST_TEST(has_env(c, "SANAGENT_POOL=default"));
    BOOST_TEST(has_env(c, "SANAGENT_LEVEL=warning"));
    BOOST_TEST(has_env(c, "SANAGENT_METRIC=data"));
    BOOST_TEST(has_env(c, "SANAGENT_PERCENT=85.0"));
    BOOST_TEST(has_env(c, "SANAGENT_THRESHOLD=80.0"));
    BOOST_TEST(has_env(c, "SANAGENT_NODE=n1"));
    BOOST_TEST(logged.size() == 1u);

    // Further passes above the same threshold: nothing new, also for a new
    // PoolAlarms (a restarted daemon reads the state file).
    for (int pass = 0; pass < 3; ++pass)
        BOOST_TEST(check_pool_alarms(config, {thin_pool(87, 5)}, dir.root, runner, log).empty());
    BOOST_TEST(runner.ran.size() == 1u);
    BOOST_TEST(PoolAlarms::load(dir.root)->level("default", "data") == AlarmLevel::warning);

    // Critical, then metadata separately, then back to ok: one event each.
    BOOST_TEST(check_pool_alarms(config, {thin_pool(95, 5)}, dir.root, runner, log).size() == 1u);
    auto meta = check_pool_alarms(config, {thin_pool(95, 91)}, dir.root, runner, log);
    BOOST_TEST_REQUIRE(meta.size() == 1u);
    BOOST_TEST(meta[0].metric == "metadata");
    BOOST_TEST(meta[0].level == AlarmLevel::critical);
    auto back = check_pool_alarms(config, {thin_pool(10, 5)}, dir.root, runner, log);
    BOOST_TEST(back.size() == 2u);
    BOOST_TEST(runner.ran.size() == 5u);
    BOOST_TEST(has_env(runner.ran.back(), "SANAGENT_LEVEL=ok"));
}

BOOST_AUTO_TEST_CASE(a_failing_command_is_logged_not_fatal_and_not_repeated) {
    test::TempDir dir;
    auto config = parse(kConfig);
    FakeRunner runner;
    runner.exit_code = 1;
    std::vector<std::string> logged;
    AlarmLog log = [&](bool, const std::string& m, const std::string&) { logged.push_back(m); };
    BOOST_TEST(check_pool_alarms(config, {thin_pool(85, 5)}, dir.root, runner, log).size() == 1u);
    BOOST_TEST_REQUIRE(logged.size() == 2u);
    BOOST_TEST(logged[1].find("alert command for pool default") != std::string::npos);
    BOOST_TEST(check_pool_alarms(config, {thin_pool(85, 5)}, dir.root, runner, log).empty());
}

BOOST_AUTO_TEST_CASE(a_pool_command_overrides_the_agent_one_and_must_be_absolute) {
    auto config = parse(kConfig + "alert_command = [\"/opt/pool-alert\"]\n");
    BOOST_TEST(alert_command_of(config, "default") == std::vector<std::string>{"/opt/pool-alert"});
    auto relative = parse(kConfig + "alert_command = [\"snmptrap\", \"-v2c\"]\n");
    Diagnostics diagnostics;
    PoolModule(std::make_shared<FakeRunner>(), [](const std::string&) -> Result<std::vector<lvm::DeviceSignature>> {
        return std::vector<lvm::DeviceSignature>{};
    }).validate(relative, diagnostics);
    BOOST_TEST(diagnostics.text().find("expected an absolute path to a program first") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(snapshot_schedule)

std::chrono::system_clock::time_point at(const std::string& utc) {
    auto t = auto_snapshot_time("v", "v+auto-" + utc);
    BOOST_TEST_REQUIRE(t.has_value());
    return *t;
}

BOOST_AUTO_TEST_CASE(schedules_are_validated) {
    BOOST_TEST(parse_schedule({{"every", "1h"}, {"keep", "24"}})->keep == 24u);
    BOOST_TEST(parse_schedule({{"every", "2s"}, {"keep", "1"}})->every.count() == 2);
    BOOST_TEST(parse_schedule({{"every", "500ms"}, {"keep", "1"}}).error().message.find("at least 1s") !=
               std::string::npos);
    BOOST_TEST(parse_schedule({{"every", "often"}, {"keep", "1"}}).error().message.find("every:") == 0u);
    BOOST_TEST(parse_schedule({{"every", "1h"}, {"keep", "0"}}).error().message.find("keep:") == 0u);
    BOOST_TEST(parse_schedule({{"every", "1h"}}).error().message.find("expected keep") == 0u);
    BOOST_TEST(parse_schedule({{"every", "1h"}, {"keep", "2"}, {"kepe", "3"}}).error().message.find("unknown key") ==
               0u);
}

BOOST_AUTO_TEST_CASE(names_carry_the_utc_second) {
    auto t = at("20261125T110000");
    BOOST_TEST(auto_snapshot_lv("vol1", t) == "vol1+auto-20261125T110000");
    BOOST_TEST(!auto_snapshot_time("vol1", "vol1+before-update").has_value());
    BOOST_TEST(!auto_snapshot_time("vol1", "vol10+auto-20261125T110000").has_value());
}

BOOST_AUTO_TEST_CASE(due_when_the_newest_is_every_old_and_prunes_beyond_keep) {
    SnapshotSchedule s{3600s, 3};
    // None yet: take one.
    auto d = decide_snapshots("v", s, {}, at("20261125T110000"));
    BOOST_TEST(d.take.value_or("") == "v+auto-20261125T110000");
    BOOST_TEST(d.prune.empty());
    // Newest 59 minutes old: not due.
    d = decide_snapshots("v", s, {"v+auto-20261125T110000"}, at("20261125T115900"));
    BOOST_TEST(!d.take.has_value());
    // An hour old: due; with three kept, the oldest goes.
    d = decide_snapshots("v", s, {"v+auto-20261125T100000", "v+auto-20261125T090000", "v+auto-20261125T110000"},
                         at("20261125T120000"));
    BOOST_TEST(d.take.value_or("") == "v+auto-20261125T120000");
    BOOST_TEST(d.prune == std::vector<std::string>{"v+auto-20261125T090000"});
    // Names that are not automatic snapshot names are never pruned.
    d = decide_snapshots("v", {3600s, 1}, {"v+before-update", "v+auto-20261125T110000"}, at("20261125T113000"));
    BOOST_TEST(!d.take.has_value());
    BOOST_TEST(d.prune.empty());
}

BOOST_AUTO_TEST_CASE(a_pass_snapshots_tagged_and_leaves_manual_snapshots_alone) {
    auto config = parse(
        "[node]\nname = \"n1\"\nroles = [\"storage\"]\n[pool.default]\nvg = \"sanpool\"\n"
        "[volume.vol1]\nsize = \"1G\"\nsnapshots = { every = \"1h\", keep = 1 }\n");
    std::vector<lvm::LogicalVolumeState> lvs(3);
    lvs[0].vg = lvs[1].vg = lvs[2].vg = "sanpool";
    lvs[0].name = "vol1";
    lvs[0].attr = "Vwi-aotz--";
    lvs[0].tags = {"sanagent"};
    lvs[1].name = "vol1+auto-20261125T090000";
    lvs[1].origin = "vol1";
    lvs[1].tags = {"sanagent", "sanagent-auto"};
    lvs[2].name = "vol1+auto-20261125T080000";  // made by hand with an automatic-looking name
    lvs[2].origin = "vol1";
    lvs[2].tags = {"sanagent"};
    FakeRunner runner;
    auto done = run_snapshot_schedules(config, lvs, runner, at("20261125T100000"));
    BOOST_TEST_REQUIRE(runner.ran.size() == 2u);
    BOOST_TEST(runner.ran[0].display() ==
               "lvm lvcreate --snapshot --addtag sanagent --addtag sanagent-auto --name vol1+auto-20261125T100000 "
               "sanpool/vol1");
    BOOST_TEST(runner.ran[1].display() == "lvm lvremove --yes sanpool/vol1+auto-20261125T090000");
    BOOST_TEST(done.size() == 2u);
}

BOOST_AUTO_TEST_CASE(a_schedule_needs_a_thin_volume) {
    auto config = parse(
        "[node]\nname = \"n1\"\nroles = [\"storage\"]\n[pool.default]\nvg = \"sanpool\"\n"
        "[volume.db]\nsize = \"1G\"\nprovisioning = \"full\"\nsnapshots = { every = \"1h\", keep = 2 }\n");
    Diagnostics diagnostics;
    VolumeModule(std::make_shared<FakeRunner>()).validate(config, diagnostics);
    BOOST_TEST(diagnostics.text().find("need provisioning = \"thin\"") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
