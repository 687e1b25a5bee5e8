#define BOOST_TEST_MODULE lvm
#include <boost/test/unit_test.hpp>

#include <fstream>
#include <map>
#include <sstream>

#include "sanagent/lvm/report.h"

using namespace sanagent;
using namespace sanagent::lvm;

namespace {

std::string fixture(const std::string& name) {
    std::ifstream in(std::string(SANAGENT_FIXTURES) + "/lvm/" + name);
    BOOST_TEST_REQUIRE(in.good(), "missing fixture " << name);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Replays recorded tool output keyed by the command line.
class ReplayRunner : public CommandRunner {
public:
    std::map<std::string, CommandOutput> outputs;
    std::vector<std::string> calls;
    Result<CommandOutput> run(const Command& c) override {
        calls.push_back(c.display());
        auto it = outputs.find(c.display());
        if (it == outputs.end()) return Error{ENOENT, "no recording for " + c.display()};
        return it->second;
    }
};

}  // namespace

BOOST_AUTO_TEST_CASE(parses_recorded_vgs) {
    auto vgs = parse_vgs_report(fixture("vgs.json"));
    BOOST_TEST_REQUIRE(vgs.ok());
    BOOST_TEST_REQUIRE(vgs->size() == 1u);
    BOOST_TEST((*vgs)[0].name == "sanpool");
    BOOST_TEST((*vgs)[0].pv_count == 1u);
    BOOST_TEST((*vgs)[0].size_bytes > (*vgs)[0].free_bytes);
}

BOOST_AUTO_TEST_CASE(parses_recorded_lvs_thin_pool_volume_and_snapshot) {
    auto lvs = parse_lvs_report(fixture("lvs.json"));
    BOOST_TEST_REQUIRE(lvs.ok());
    BOOST_TEST_REQUIRE(lvs->size() == 3u);
    const auto& pool = (*lvs)[0];
    BOOST_TEST(pool.name == "thin");
    BOOST_TEST(pool.is_thin_pool());
    BOOST_TEST(pool.size_bytes == 256u * 1024 * 1024);
    BOOST_TEST(pool.data_percent.has_value());
    BOOST_TEST(pool.metadata_percent.has_value());
    const auto& vol = (*lvs)[1];
    BOOST_TEST(vol.name == "vol1");
    BOOST_TEST(vol.is_thin_volume());
    BOOST_TEST(vol.is_active());
    BOOST_TEST(vol.pool == "thin");
    BOOST_TEST(vol.tags == std::vector<std::string>{"sanagent"});
    BOOST_TEST(!vol.metadata_percent.has_value());
    const auto& snap = (*lvs)[2];
    BOOST_TEST(snap.origin == "vol1");
    BOOST_TEST(!snap.is_active());  // thin snapshots are created with activation skip
}

BOOST_AUTO_TEST_CASE(rejects_text_that_is_not_a_report) {
    BOOST_TEST(!parse_lvs_report("  WARNING: not JSON").ok());
    BOOST_TEST(!parse_lvs_report("{\"other\": 1}").ok());
    auto empty = parse_lvs_report("{\"report\": [{\"lv\": []}]}");
    BOOST_TEST_REQUIRE(empty.ok());
    BOOST_TEST(empty->empty());
}

BOOST_AUTO_TEST_CASE(reporter_runs_one_command_per_report_and_carries_failures) {
    ReplayRunner runner;
    runner.outputs[lvs_report_command().display()] = CommandOutput{0, fixture("lvs.json"), ""};
    runner.outputs[vgs_report_command().display()] = CommandOutput{5, "", "  Volume group \"x\" not found\n"};
    LvmReporter reporter(runner);
    auto lvs = reporter.logical_volumes();
    BOOST_TEST_REQUIRE(lvs.ok());
    BOOST_TEST(lvs->size() == 3u);
    BOOST_TEST(runner.calls.size() == 1u);
    auto vgs = reporter.volume_groups();
    BOOST_TEST_REQUIRE(!vgs.ok());
    BOOST_TEST(vgs.error().message.find("reading volume groups") == 0u);
    BOOST_TEST(vgs.error().message.find("not found") != std::string::npos);
}
