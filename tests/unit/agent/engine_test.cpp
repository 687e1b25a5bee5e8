#include <unistd.h>

#include <boost/test/unit_test.hpp>

#include "fake_module.h"
#include "sanagent/agent/agent.h"
#include "sanagent/agent/dbroot_module.h"
#include "test_dir.h"

using namespace sanagent::agent;
using namespace sanagent::agent::test;

namespace sanagent::agent {
std::ostream& operator<<(std::ostream& out, Outcome o) {
    return out << outcome_name(o);
}
std::ostream& operator<<(std::ostream& out, Health h) {
    return out << health_name(h);
}
std::ostream& operator<<(std::ostream& out, StepRecord::State s) {
    return out << state_name(s);
}
}  // namespace sanagent::agent

namespace {

struct FakeAgent {
    TempDir dir;
    std::shared_ptr<FakeMachine> machine = std::make_shared<FakeMachine>();
    Agent agent{options()};

    AgentOptions options() {
        AgentOptions o;
        o.load.config_dir = dir.root;
        o.load.secret_owner = ::getuid();
        o.state_dir = dir.root / "state";
        auto m = machine;
        o.modules = [m](const Config&) {
            std::vector<std::unique_ptr<Module>> modules;
            modules.push_back(std::make_unique<FakeVolumeModule>(m));
            return modules;
        };
        return o;
    }
    void configure(const std::string& text) {
        dir.write("sanagent.conf", text);
        Diagnostics diagnostics;
        BOOST_TEST_REQUIRE(agent.reload(diagnostics), diagnostics.text());
    }
};

const std::string kTwoVolumes = "[volume.vm1]\nsize = \"10G\"\n[volume.vm2]\nsize = \"20G\"\n";

}  // namespace

BOOST_AUTO_TEST_SUITE(engine)

BOOST_FIXTURE_TEST_CASE(plan_orders_steps_per_object_and_changes_nothing, FakeAgent) {
    configure(kTwoVolumes);
    auto plan = agent.plan();
    BOOST_TEST(plan.errors.empty());
    std::vector<std::string> actions;
    for (const auto& s : plan.steps) actions.push_back(s.object + ": " + s.action);
    std::vector<std::string> expected = {"volume/vm1: create vm1", "volume/vm1: set size of vm1",
                                         "volume/vm2: create vm2", "volume/vm2: set size of vm2"};
    BOOST_TEST(actions == expected, boost::test_tools::per_element());
    BOOST_TEST(machine->writes == 0u);
    BOOST_TEST(to_text(plan.steps) ==
               "1. volume/vm1: create vm1\n2. volume/vm1: set size of vm1\n"
               "3. volume/vm2: create vm2\n4. volume/vm2: set size of vm2\n");
    BOOST_TEST(to_json(plan.steps[0]).dump() ==
               R"({"action":"create vm1","module":"fake-volume","object":"volume/vm1","undoable":true})");
}

BOOST_FIXTURE_TEST_CASE(second_apply_makes_no_changes, FakeAgent) {
    configure(kTwoVolumes);
    auto first = agent.apply();
    BOOST_TEST(first.outcome == Outcome::ok, to_text(first));
    BOOST_TEST(first.changes == 4u);
    BOOST_TEST(machine->writes == 4u);
    BOOST_TEST(machine->volumes.at("vm2") == 20ull << 30);
    auto second = agent.apply();
    BOOST_TEST(second.outcome == Outcome::ok);
    BOOST_TEST(second.changes == 0u);
    BOOST_TEST(second.records.empty());
    BOOST_TEST(machine->writes == 4u);
    for (const auto& s : agent.status()) BOOST_TEST(s.health == Health::ok, s.object);
}

BOOST_FIXTURE_TEST_CASE(a_failing_step_rolls_back_its_object_and_others_converge, FakeAgent) {
    configure(kTwoVolumes);
    machine->fail_actions.insert("set size of vm1");
    auto report = agent.apply();
    BOOST_TEST(report.outcome == Outcome::partial, to_text(report));
    BOOST_TEST(!machine->volumes.count("vm1"));  // its create was undone
    BOOST_TEST(machine->volumes.at("vm2") == 20ull << 30);
    BOOST_TEST(report.changes == 2u);
    BOOST_TEST(to_text(report) ==
               "done: volume/vm1: create vm1\n"
               "failed: volume/vm1: set size of vm1: set size of vm1: Input/output error\n"
               "undone: volume/vm1: undo: create vm1\n"
               "done: volume/vm2: create vm2\n"
               "done: volume/vm2: set size of vm2\n"
               "partial: 2 change(s)\n");
    auto owned = Ownership::load(dir.root / "state");
    BOOST_TEST_REQUIRE(owned.ok());
    BOOST_TEST(!owned->owns("volume/vm1"));
    BOOST_TEST(owned->owns("volume/vm2"));
    // The fault goes away: the next run finishes vm1 only.
    machine->fail_actions.clear();
    auto again = agent.apply();
    BOOST_TEST(again.outcome == Outcome::ok);
    BOOST_TEST(again.changes == 2u);
}

BOOST_FIXTURE_TEST_CASE(all_objects_failing_is_failed, FakeAgent) {
    configure("[volume.vm1]\nsize = \"1G\"\n");
    machine->fail_actions.insert("create vm1");
    auto report = agent.apply();
    BOOST_TEST(report.outcome == Outcome::failed);
    BOOST_TEST(report.records.size() == 2u);
    BOOST_TEST(report.records[1].state == StepRecord::State::skipped);
}

BOOST_FIXTURE_TEST_CASE(foreign_objects_are_reported_never_changed, FakeAgent) {
    machine->volumes["vm1"] = 5;  // made by hand
    configure(kTwoVolumes);
    auto report = agent.apply();
    BOOST_TEST(machine->volumes.at("vm1") == 5u);
    BOOST_TEST(report.changes == 2u);
    auto status = agent.status();
    BOOST_TEST_REQUIRE(status.size() == 2u);
    BOOST_TEST(status[0].object == "volume/vm1");
    BOOST_TEST(status[0].health == Health::foreign);
}

BOOST_FIXTURE_TEST_CASE(removing_from_config_orphans_and_keeps_data, FakeAgent) {
    configure(kTwoVolumes);
    BOOST_TEST(agent.apply().outcome == Outcome::ok);
    const auto writes = machine->writes;
    configure("[volume.vm1]\nsize = \"10G\"\n");
    auto report = agent.apply();
    BOOST_TEST(report.changes == 0u);
    BOOST_TEST(machine->writes == writes);
    BOOST_TEST(machine->volumes.count("vm2") == 1u);
    auto status = agent.status();
    BOOST_TEST_REQUIRE(status.size() == 2u);
    BOOST_TEST(status[1].object == "volume/vm2");
    BOOST_TEST(status[1].health == Health::orphaned);
    BOOST_TEST(to_json(status)[1]["health"] == "orphaned");
}

BOOST_FIXTURE_TEST_CASE(a_module_that_cannot_observe_makes_the_run_partial, FakeAgent) {
    configure(kTwoVolumes);
    machine->observe_fails = true;
    auto report = agent.apply();
    BOOST_TEST(report.outcome == Outcome::partial);
    BOOST_TEST_REQUIRE(report.errors.size() == 1u);
    BOOST_TEST(report.errors[0] == "fake-volume: observing: fake machine unreachable");
    BOOST_TEST(agent.status()[0].health == Health::failed);
}

BOOST_FIXTURE_TEST_CASE(a_bad_reload_keeps_the_previous_config, FakeAgent) {
    configure(kTwoVolumes);
    dir.write("sanagent.conf", "[volume.vm1]\nsize = \"ten\"\n");
    Diagnostics diagnostics;
    BOOST_TEST(!agent.reload(diagnostics));
    BOOST_TEST(agent.config().objects("volume").size() == 2u);
}

BOOST_FIXTURE_TEST_CASE(corrupt_ownership_is_never_guessed, FakeAgent) {
    configure(kTwoVolumes);
    dir.write("state/owned.json", "{not json");
    auto report = agent.apply();
    BOOST_TEST(report.outcome == Outcome::failed);
    BOOST_TEST(machine->writes == 0u);
}

// The real dbroot module against a temporary tree shaped like configfs.
BOOST_AUTO_TEST_CASE(dbroot_is_written_once_and_only_before_devices) {
    TempDir dir;
    auto tree = std::make_shared<sanagent::configfs::ConfigfsTree>(dir.root / "target");
    dir.write("target/version", "Target Engine Core ConfigFS Infrastructure v5.0\n");
    dir.write("target/dbroot", "/var/target\n");
    std::filesystem::create_directories(dir.root / "target/core");
    const auto wanted = (dir.root / "db").string();
    dir.write("sanagent.conf", "[node]\ntarget_dbroot = \"" + wanted + "\"\n");
    AgentOptions o;
    o.load.config_dir = dir.root;
    o.state_dir = dir.root / "state";
    o.modules = [tree](const Config&) {
        std::vector<std::unique_ptr<Module>> modules;
        modules.push_back(std::make_unique<DbrootModule>(tree));
        return modules;
    };
    Agent agent(o);
    Diagnostics diagnostics;
    BOOST_TEST_REQUIRE(agent.reload(diagnostics), diagnostics.text());
    auto plan = agent.plan();
    BOOST_TEST_REQUIRE(plan.steps.size() == 2u);
    BOOST_TEST(plan.steps[0].action ==
               "create directory " + wanted + ", " + wanted + "/pr, " + wanted + "/alua (mode 0700)");
    BOOST_TEST(plan.steps[1].action == "set LIO dbroot to " + wanted + " (was /var/target)");
    auto first = agent.apply();
    BOOST_TEST(first.outcome == Outcome::ok, to_text(first));
    BOOST_TEST(*tree->read_attr("dbroot") == wanted);
    BOOST_TEST(std::filesystem::is_directory(wanted));
    // The kernel writes APTPL files to <dbroot>/pr/ but never makes it.
    BOOST_TEST(std::filesystem::is_directory(wanted + "/pr"));
    BOOST_TEST(std::filesystem::is_directory(wanted + "/alua"));
    const auto mutations = tree->mutations();
    auto second = agent.apply();
    BOOST_TEST(second.changes == 0u);
    BOOST_TEST(tree->mutations() == mutations);
    BOOST_TEST(agent.status()[0].health == Health::ok);

    // pr/ removed behind sanagent's back: reported, and made again.
    std::filesystem::remove(wanted + "/pr");
    BOOST_TEST(agent.status()[0].health == Health::degraded);
    auto third = agent.plan();
    BOOST_TEST_REQUIRE(third.steps.size() == 1u);
    BOOST_TEST(third.steps[0].action == "create directory " + wanted + "/pr (mode 0700)");
    BOOST_TEST(agent.apply().outcome == Outcome::ok);
    BOOST_TEST(std::filesystem::is_directory(wanted + "/pr"));

    // Someone else's dbroot is foreign; with a device registered nothing can change.
    dir.write("target/dbroot", "/srv/elsewhere\n");
    std::filesystem::remove(dir.root / "state/owned.json");
    BOOST_TEST(agent.plan().steps.empty());
    BOOST_TEST(agent.status()[0].health == Health::foreign);
    dir.write("target/dbroot", "/var/target\n");
    std::filesystem::create_directories(dir.root / "target/core/fileio_0/disk0");
    BOOST_TEST(agent.plan().steps.empty());
    BOOST_TEST(agent.status()[0].health == Health::degraded);
}

BOOST_AUTO_TEST_SUITE_END()
