#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "sanagent/agent/agent.h"
#include "sanagent/agent/chrony.h"
#include "sanagent/agent/time_module.h"
#include "test_dir.h"

using namespace sanagent;
using namespace sanagent::agent;
using namespace sanagent::agent::test;
namespace fs = std::filesystem;

namespace sanagent::agent {
// Defined in engine_test.cpp, same test binary.
std::ostream& operator<<(std::ostream& out, Outcome o);
std::ostream& operator<<(std::ostream& out, Health h);
}  // namespace sanagent::agent

namespace {

std::string fixture(const std::string& name) {
    std::ifstream in(std::string(SANAGENT_FIXTURES) + "/chrony/" + name);
    BOOST_TEST_REQUIRE(in.good(), "missing fixture " << name);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

bool close_to(double a, double b) {
    return std::fabs(a - b) < 1e-12;
}

// Replays recorded chronyc output keyed by the command line; other commands succeed silently.
class ReplayRunner : public CommandRunner {
public:
    std::map<std::string, CommandOutput> outputs;
    std::vector<std::string> calls;
    Result<CommandOutput> run(const Command& c) override {
        calls.push_back(c.display());
        auto it = outputs.find(c.display());
        if (it == outputs.end()) return CommandOutput{};
        return it->second;
    }
    void replay(const std::string& tracking, const std::string& sources) {
        outputs["chronyc -n -c tracking"] = {0, fixture(tracking), ""};
        outputs["chronyc -n -c sources"] = {0, fixture(sources), ""};
    }
};

const std::string kDebianChronyConf =
    "confdir /etc/chrony/conf.d\n"
    "pool 2.debian.pool.ntp.org iburst\n"
    "sourcedir /run/chrony-dhcp\n"
    "sourcedir /etc/chrony/sources.d\n"
    "keyfile /etc/chrony/chrony.keys\n";

// A machine below a temporary root: chrony installed with Debian's chrony.conf,
// chronyd running (a /proc entry), zone files, and the agent's config dir.
struct Machine {
    TempDir dir;
    fs::path root = dir.root / "root";
    std::shared_ptr<ReplayRunner> runner = std::make_shared<ReplayRunner>();
    Agent agent{options()};

    Machine() {
        dir.write("root/usr/sbin/chronyd", "");
        dir.write("root/etc/chrony/chrony.conf", kDebianChronyConf);
        fs::create_directories(root / "etc/chrony/conf.d");
        fs::create_directories(root / "etc/chrony/sources.d");
        dir.write("root/usr/share/zoneinfo/Etc/UTC", "TZif");
        fs::create_symlink("Etc/UTC", root / "usr/share/zoneinfo/UTC");  // as Debian ships it
        dir.write("root/usr/share/zoneinfo/Europe/Paris", "TZif");
        fs::create_symlink("/usr/share/zoneinfo/Etc/UTC", root / "etc/localtime");
        dir.write("root/proc/321/comm", "chronyd\n");
        dir.write("root/proc/1/comm", "init\n");
        runner->replay("tracking-synchronised.csv", "sources-synchronised.csv");
    }
    AgentOptions options() {
        AgentOptions o;
        o.load.config_dir = dir.root;
        o.load.secret_owner = ::getuid();
        o.state_dir = dir.root / "state";
        auto r = runner;
        auto at = root;
        o.modules = [r, at](const Config&) {
            std::vector<std::unique_ptr<Module>> modules;
            modules.push_back(std::make_unique<TimeModule>(r, at));
            return modules;
        };
        return o;
    }
    void configure(const std::string& text) {
        dir.write("sanagent.conf", text);
        Diagnostics diagnostics;
        BOOST_TEST_REQUIRE(agent.reload(diagnostics), diagnostics.text());
    }
    std::string errors(const std::string& text) {
        dir.write("sanagent.conf", text);
        Diagnostics diagnostics;
        BOOST_TEST(!agent.reload(diagnostics));
        return diagnostics.text();
    }
    std::string read(const std::string& relative) {
        std::ifstream in(root / relative);
        std::ostringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }
    std::vector<std::string> actions() {
        std::vector<std::string> out;
        auto plan = agent.plan();
        for (const auto& e : plan.errors) out.push_back("error: " + e);
        for (const auto& s : plan.steps) out.push_back(s.object + ": " + s.action);
        return out;
    }
    ObjectStatus status_of(const std::string& object) {
        for (auto& s : agent.status())
            if (s.object == object) return s;
        BOOST_FAIL("no status for " << object);
        return {};
    }
};

const std::string kOneServer = "[time]\nservers = [\"10.77.0.1\"]\n";

}  // namespace

BOOST_AUTO_TEST_SUITE(time_rendering)

BOOST_AUTO_TEST_CASE(sources_drop_in_has_servers_then_pools_with_options) {
    chrony::TimeSpec spec;
    spec.servers = {"ntp1.example.org", "10.0.10.1"};
    spec.pools = {"0.pool.ntp.org"};
    spec.prefer = "10.0.10.1";
    spec.minpoll = 4;
    spec.maxpoll = 8;
    BOOST_TEST(chrony::render_sources(spec) == std::string(chrony::kHeader) +
                                                   "server ntp1.example.org iburst minpoll 4 maxpoll 8\n"
                                                   "server 10.0.10.1 iburst minpoll 4 maxpoll 8 prefer\n"
                                                   "pool 0.pool.ntp.org iburst minpoll 4 maxpoll 8\n");
}

BOOST_AUTO_TEST_CASE(conf_drop_in_only_when_serving) {
    chrony::TimeSpec spec;
    spec.servers = {"10.0.10.1"};
    BOOST_TEST(chrony::render_conf(spec).empty());
    spec.serve_to = {"10.0.10.0/24", "fd00::/64"};
    spec.local_stratum = 8;
    BOOST_TEST(chrony::render_conf(spec) ==
               std::string(chrony::kHeader) + "allow 10.0.10.0/24\nallow fd00::/64\nlocal stratum 8\n");
}

BOOST_AUTO_TEST_CASE(reads_debian_chrony_conf_directives) {
    auto conf = chrony::parse_chrony_conf(kDebianChronyConf, "/etc/chrony/conf.d", "/etc/chrony/sources.d");
    BOOST_TEST(conf.reads_confdir);
    BOOST_TEST(conf.reads_sourcedir);
    BOOST_TEST(conf.own_sources == std::vector<std::string>{"pool 2.debian.pool.ntp.org"});
    auto other = chrony::parse_chrony_conf(
        "# confdir /etc/chrony/conf.d\nserver a.example iburst\n"
        "include /etc/chrony/conf.d/*.conf\nsourcedir /run/x /etc/chrony/sources.d/\n",
        "/etc/chrony/conf.d", "/etc/chrony/sources.d");
    BOOST_TEST(other.reads_confdir);    // through include
    BOOST_TEST(other.reads_sourcedir);  // second of two directories, trailing slash
    auto bare = chrony::parse_chrony_conf("server a.example iburst\n", "/etc/chrony/conf.d", "/etc/chrony/sources.d");
    BOOST_TEST(!bare.reads_confdir);
    BOOST_TEST(!bare.reads_sourcedir);
}

BOOST_AUTO_TEST_CASE(name_and_address_syntax) {
    for (const char* good : {"0.pool.ntp.org", "ntp", "NTP-1.example.org.", "10.0.10.1", "fd00::1"})
        BOOST_TEST((chrony::is_host_name(good) || chrony::is_address(good)), good);
    for (const char* bad : {"", "bad host!", "-a.example", "a..b", "a/b", "server;rm", "a.example -x"})
        BOOST_TEST(!(chrony::is_host_name(bad) || chrony::is_address(bad)), bad);
    BOOST_TEST(chrony::is_subnet("10.0.10.0/24"));
    BOOST_TEST(chrony::is_subnet("fd00::/64"));
    BOOST_TEST(chrony::is_subnet("10.0.10.5"));
    BOOST_TEST(!chrony::is_subnet("10.0.10.0/33"));
    BOOST_TEST(!chrony::is_subnet("10.0.10.0/"));
    BOOST_TEST(!chrony::is_subnet("all"));
    BOOST_TEST(chrony::is_zone_name("Europe/Paris"));
    BOOST_TEST(chrony::is_zone_name("Etc/GMT+2"));
    BOOST_TEST(!chrony::is_zone_name("../../etc/shadow"));
    BOOST_TEST(!chrony::is_zone_name("/etc/passwd"));
    BOOST_TEST(!chrony::is_zone_name("Europe/"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(chronyc_csv)

BOOST_AUTO_TEST_CASE(tracking_synchronised_every_field) {
    auto t = chrony::parse_tracking(fixture("tracking-synchronised.csv"));
    BOOST_TEST_REQUIRE(t.ok());
    BOOST_TEST(t->reference_id == "0A4D0001");
    BOOST_TEST(t->reference == "10.77.0.1");
    BOOST_TEST(t->stratum == 9);
    BOOST_TEST(close_to(t->ref_time, 1795595819.032125108));
    BOOST_TEST(close_to(t->system_time, -0.000003631));
    BOOST_TEST(close_to(t->last_offset, 0.000028302));
    BOOST_TEST(close_to(t->rms_offset, 0.000045325));
    BOOST_TEST(close_to(t->frequency_ppm, 54.614));
    BOOST_TEST(close_to(t->residual_frequency_ppm, 0.784));
    BOOST_TEST(close_to(t->skew_ppm, 33.888));
    BOOST_TEST(close_to(t->root_delay, 0.000093376));
    BOOST_TEST(close_to(t->root_dispersion, 0.000081214));
    BOOST_TEST(close_to(t->update_interval, 1.0));
    BOOST_TEST(t->leap_status == "Normal");
}

BOOST_AUTO_TEST_CASE(tracking_before_any_source) {
    auto t = chrony::parse_tracking(fixture("tracking-unsynchronised.csv"));
    BOOST_TEST_REQUIRE(t.ok());
    BOOST_TEST(t->reference_id == "00000000");
    BOOST_TEST(t->reference.empty());
    BOOST_TEST(t->stratum == 0);
    BOOST_TEST(close_to(t->root_dispersion, 1.0));
    BOOST_TEST(t->leap_status == "Not synchronised");
}

BOOST_AUTO_TEST_CASE(sources_every_field) {
    auto s = chrony::parse_sources(fixture("sources-synchronised.csv"));
    BOOST_TEST_REQUIRE(s.ok());
    BOOST_TEST_REQUIRE(s->size() == 1u);
    const auto& src = (*s)[0];
    BOOST_TEST(src.mode == '^');
    BOOST_TEST(src.state == '*');
    BOOST_TEST(src.address == "10.77.0.1");
    BOOST_TEST(src.stratum == 8);
    BOOST_TEST(src.poll == 0);
    BOOST_TEST(src.reach == 0377);
    BOOST_TEST(src.last_rx == 1);
    BOOST_TEST(close_to(src.adjusted_offset, 0.000023433));
    BOOST_TEST(close_to(src.measured_offset, 0.000042854));
    BOOST_TEST(close_to(src.error, 0.000055915));
}

BOOST_AUTO_TEST_CASE(sources_unreachable_and_empty) {
    auto s = chrony::parse_sources(fixture("sources-unreachable.csv"));
    BOOST_TEST_REQUIRE(s.ok());
    BOOST_TEST_REQUIRE(s->size() == 1u);
    BOOST_TEST((*s)[0].state == '?');
    BOOST_TEST((*s)[0].reach == 0);
    BOOST_TEST((*s)[0].last_rx == -1);
    auto empty = chrony::parse_sources(fixture("sources-empty.csv"));
    BOOST_TEST_REQUIRE(empty.ok());
    BOOST_TEST(empty->empty());
}

BOOST_AUTO_TEST_CASE(rejects_text_that_is_not_chronyc_csv) {
    BOOST_TEST(!chrony::parse_tracking("506 Cannot talk to daemon\n").ok());
    BOOST_TEST(!chrony::parse_tracking("").ok());
    auto bad = chrony::parse_tracking("0A4D0001,10.77.0.1,nine,1,0,0,0,0,0,0,0,0,1.0,Normal\n");
    BOOST_TEST_REQUIRE(!bad.ok());
    BOOST_TEST(bad.error().message == "chronyc -c tracking: expected a number for stratum, got \"nine\"");
    BOOST_TEST(!chrony::parse_sources("^,*,10.77.0.1,8\n").ok());
    BOOST_TEST(!chrony::parse_sources("^,*,10.77.0.1,8,0,389,1,0,0,0\n").ok());  // 9 is not octal
}

BOOST_AUTO_TEST_CASE(judges_each_condition) {
    auto tracking = *chrony::parse_tracking(fixture("tracking-synchronised.csv"));
    auto sources = *chrony::parse_sources(fixture("sources-synchronised.csv"));
    const std::chrono::milliseconds limit{100};
    BOOST_TEST(chrony::judge(tracking, sources, limit).synchronised);

    // Recorded: tracking still names the old reference, leap Normal, but nothing is selected.
    auto unreachable = chrony::judge(*chrony::parse_tracking(fixture("tracking-unreachable.csv")),
                                     *chrony::parse_sources(fixture("sources-unreachable.csv")), limit);
    BOOST_TEST(!unreachable.synchronised);
    BOOST_TEST(unreachable.reason == "no selected source: 10.77.0.99 unreachable (reach 0)");

    auto none = chrony::judge(*chrony::parse_tracking(fixture("tracking-unsynchronised.csv")), {}, limit);
    BOOST_TEST(none.reason == "no selected source: chronyd has no sources");

    auto t = tracking;
    t.leap_status = "Not synchronised";
    BOOST_TEST(chrony::judge(t, sources, limit).reason == "leap status is Not synchronised");
    t = tracking;
    t.stratum = 16;
    BOOST_TEST(chrony::judge(t, sources, limit).reason == "stratum 16 is not below 16");
    t = tracking;
    t.system_time = -0.25;
    BOOST_TEST(chrony::judge(t, sources, limit).reason == "offset -0.250000s is not below max_offset 100ms");
    t.system_time = 0.0999;
    BOOST_TEST(chrony::judge(t, sources, limit).synchronised);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(time_module)

BOOST_FIXTURE_TEST_CASE(first_apply_writes_reloads_links_then_nothing, Machine) {
    configure("[time]\nservers = [\"10.77.0.1\"]\nminpoll = 0\nmaxpoll = 2\ntimezone = \"Europe/Paris\"\n");
    auto first = actions();
    BOOST_TEST_REQUIRE(first.size() == 3u);
    BOOST_TEST(
        first[0] ==
        "time/sources: write /etc/chrony/sources.d/sanagent.sources (server 10.77.0.1 iburst minpoll 0 maxpoll 2)");
    BOOST_TEST(first[1] == "time/sources: chronyc reload sources");
    BOOST_TEST(first[2] ==
               "time/zone: link /etc/localtime to /usr/share/zoneinfo/Europe/Paris (was /usr/share/zoneinfo/Etc/UTC)");
    runner->calls.clear();
    auto report = agent.apply();
    BOOST_TEST(report.outcome == Outcome::ok);
    BOOST_TEST(report.changes == 3u);
    BOOST_TEST(read("etc/chrony/sources.d/sanagent.sources") ==
               std::string(chrony::kHeader) + "server 10.77.0.1 iburst minpoll 0 maxpoll 2\n");
    BOOST_TEST(fs::read_symlink(root / "etc/localtime") == "/usr/share/zoneinfo/Europe/Paris");
    BOOST_TEST(
        (std::find(runner->calls.begin(), runner->calls.end(), "chronyc reload sources") != runner->calls.end()));
    for (const auto& e : fs::directory_iterator(root / "etc/chrony/sources.d"))
        BOOST_TEST(e.path().filename() == "sanagent.sources");  // no temporary file stays

    BOOST_TEST(actions().empty());
    auto again = agent.apply();
    BOOST_TEST(again.changes == 0u);
}

BOOST_FIXTURE_TEST_CASE(status_reports_source_stratum_offset, Machine) {
    configure(kOneServer);
    BOOST_TEST(agent.apply().outcome == Outcome::ok);
    auto sync = status_of(TimeModule::kSync);
    BOOST_TEST(sync.health == Health::ok);
    BOOST_TEST(sync.desired == "synchronised (|offset| < 100ms)");
    BOOST_TEST(sync.actual == "synchronised to 10.77.0.1 stratum 9 offset -0.000004s");
    auto sources = status_of(TimeModule::kSources);
    BOOST_TEST(sources.health == Health::ok);
    BOOST_TEST(sources.actual == "server 10.77.0.1 iburst");
    BOOST_TEST(sources.detail ==
               "chrony.conf also has pool 2.debian.pool.ntp.org (not changed; comment it out for one time source)");
    BOOST_TEST(status_of(TimeModule::kZone).actual == "Etc/UTC");
}

BOOST_FIXTURE_TEST_CASE(unreachable_server_is_degraded_with_the_reason, Machine) {
    configure(kOneServer);
    runner->replay("tracking-unreachable.csv", "sources-unreachable.csv");
    auto sync = status_of(TimeModule::kSync);
    BOOST_TEST(sync.health == Health::degraded);
    BOOST_TEST(sync.actual == "unsynchronised (stratum 9, offset +0.000000s)");
    BOOST_TEST(sync.detail == "no selected source: 10.77.0.99 unreachable (reach 0)");
}

BOOST_FIXTURE_TEST_CASE(chronyc_failure_is_reported_not_guessed, Machine) {
    configure(kOneServer);
    runner->outputs["chronyc -n -c tracking"] = {1, "", "506 Cannot talk to daemon\n"};
    auto sync = status_of(TimeModule::kSync);
    BOOST_TEST(sync.health == Health::degraded);
    BOOST_TEST(sync.actual == "unknown");
    BOOST_TEST(sync.detail.find("506 Cannot talk to daemon") != std::string::npos, sync.detail);
}

BOOST_FIXTURE_TEST_CASE(chronyd_not_running_writes_without_reload, Machine) {
    fs::remove_all(root / "proc/321");
    configure(kOneServer + "timezone = \"Europe/Paris\"\n");
    auto plan = actions();
    BOOST_TEST_REQUIRE(plan.size() == 2u);  // the drop-in and the zone, no reload
    BOOST_TEST(plan[0].find("time/sources: write") == 0u);
    BOOST_TEST(plan[1].find("time/zone: link") == 0u);
    auto sync = status_of(TimeModule::kSync);
    BOOST_TEST(sync.detail == "chronyd is not running");
    BOOST_TEST(runner->calls.empty());
}

BOOST_FIXTURE_TEST_CASE(serving_restarts_through_systemd_only, Machine) {
    configure(kOneServer + "serve_to = [\"10.0.10.0/24\"]\nlocal_stratum = 8\ntimezone = \"Etc/UTC\"\n");
    auto plan = actions();
    BOOST_TEST_REQUIRE(plan.size() == 3u);
    BOOST_TEST(plan[2] == "time/serve: write /etc/chrony/conf.d/sanagent.conf (allow 10.0.10.0/24; local stratum 8)");
    BOOST_TEST(agent.apply().outcome == Outcome::ok);
    BOOST_TEST(status_of(TimeModule::kServe).detail ==
               "chronyd runs outside systemd: restart it after a change of serve_to or local_stratum");

    fs::create_directories(root / "run/systemd/system");
    configure(kOneServer + "serve_to = [\"10.0.0.0/16\"]\ntimezone = \"Etc/UTC\"\n");
    plan = actions();
    BOOST_TEST_REQUIRE(plan.size() == 2u);
    BOOST_TEST(plan[0] == "time/serve: rewrite /etc/chrony/conf.d/sanagent.conf (allow 10.0.0.0/16)");
    BOOST_TEST(plan[1] == "time/serve: systemctl try-restart chrony.service (allow and local are read at start)");
}

BOOST_FIXTURE_TEST_CASE(failed_reload_puts_the_old_drop_in_back, Machine) {
    dir.write("root/etc/chrony/sources.d/sanagent.sources", std::string(chrony::kHeader) + "server 10.0.0.9 iburst\n");
    configure(kOneServer + "timezone = \"Etc/UTC\"\n");
    runner->outputs["chronyc reload sources"] = {1, "", "501 Not authorised\n"};
    auto report = agent.apply();
    BOOST_TEST(report.outcome == Outcome::failed);
    BOOST_TEST(read("etc/chrony/sources.d/sanagent.sources") ==
               std::string(chrony::kHeader) + "server 10.0.0.9 iburst\n");
}

BOOST_FIXTURE_TEST_CASE(missing_sourcedir_is_reported_with_the_line_to_add, Machine) {
    dir.write("root/etc/chrony/chrony.conf", "server 10.0.0.1 iburst\n");
    configure(kOneServer + "timezone = \"Etc/UTC\"\n");
    BOOST_TEST(actions().empty());
    auto sources = status_of(TimeModule::kSources);
    BOOST_TEST(sources.health == Health::degraded);
    BOOST_TEST(sources.detail ==
               "/etc/chrony/chrony.conf does not read /etc/chrony/sources.d: add the line `sourcedir "
               "/etc/chrony/sources.d` to it (sanagent never edits chrony.conf)");
    BOOST_TEST(read("etc/chrony/chrony.conf") == "server 10.0.0.1 iburst\n");
}

BOOST_FIXTURE_TEST_CASE(a_drop_in_someone_else_wrote_is_foreign, Machine) {
    dir.write("root/etc/chrony/sources.d/sanagent.sources", "server hand.example iburst\n");
    configure(kOneServer + "timezone = \"Etc/UTC\"\n");
    BOOST_TEST(actions().empty());
    BOOST_TEST(status_of(TimeModule::kSources).health == Health::foreign);
}

BOOST_FIXTURE_TEST_CASE(another_ntp_daemon_is_reported_not_stopped, Machine) {
    dir.write("root/proc/412/comm", "systemd-timesyn\n");
    configure(kOneServer + "timezone = \"Etc/UTC\"\n");
    BOOST_TEST(agent.apply().outcome == Outcome::ok);
    auto sync = status_of(TimeModule::kSync);
    BOOST_TEST(sync.health == Health::degraded);
    BOOST_TEST(sync.detail ==
               "systemd-timesyncd (pid 412) also steers the clock: stop and disable it (sanagent leaves it alone)");
    for (const auto& call : runner->calls) BOOST_TEST(call.find("timesyncd") == std::string::npos);
}

BOOST_FIXTURE_TEST_CASE(bad_input_is_refused_with_file_and_line, Machine) {
    auto text = errors(
        "[time]\nservers = [\"ok.example\", \"bad host!\"]\nmax_offset = \"soon\"\n"
        "serve_to = [\"10.0.0.0/40\"]\nprefer = \"other.example\"\ntimezone = \"../../etc/shadow\"\n");
    const std::string conf = (dir.root / "sanagent.conf").string();
    BOOST_TEST(text.find(conf + ":2: [time] servers: expected a host name or an IP address, got \"bad host!\"") !=
                   std::string::npos,
               text);
    BOOST_TEST(text.find(conf + ":3: [time] max_offset: expected a duration") != std::string::npos, text);
    BOOST_TEST(text.find(conf + ":4: [time] serve_to:") != std::string::npos, text);
    BOOST_TEST(text.find(conf + ":5: [time] prefer: expected one of servers or pools") != std::string::npos, text);
    BOOST_TEST(text.find(conf + ":6: [time] timezone: expected a zone name") != std::string::npos, text);
    BOOST_TEST(!fs::exists(root / "etc/chrony/sources.d/sanagent.sources"));

    text = errors(kOneServer + "timezone = \"Mars/Olympus\"\n");
    BOOST_TEST(
        text.find(conf + ":3: [time] timezone: no zone \"Mars/Olympus\" in /usr/share/zoneinfo") != std::string::npos,
        text);
    text = errors(kOneServer + "minpoll = 8\nmaxpoll = 4\n");
    BOOST_TEST(text.find(conf + ":4: [time] maxpoll: expected maxpoll >= minpoll") != std::string::npos, text);
}

BOOST_FIXTURE_TEST_CASE(chrony_not_installed_is_a_config_error, Machine) {
    fs::remove(root / "usr/sbin/chronyd");
    auto text = errors("[node]\nname = \"n1\"\n\n[time]\nservers = [\"10.77.0.1\"]\n");
    BOOST_TEST(text.find((dir.root / "sanagent.conf").string() +
                         ":4: [time]: chrony is not installed (no /usr/sbin/chronyd or /etc/chrony/chrony.conf): "
                         "install the chrony package") != std::string::npos,
               text);
}

BOOST_FIXTURE_TEST_CASE(a_link_to_another_name_of_the_zone_is_kept, Machine) {
    configure(kOneServer);  // timezone "UTC"; /etc/localtime -> .../Etc/UTC, the same file
    for (const auto& action : actions()) BOOST_TEST(action.find("time/zone") == std::string::npos, action);
    BOOST_TEST(status_of(TimeModule::kZone).health == Health::ok);
}

BOOST_FIXTURE_TEST_CASE(under_systemd_the_zone_goes_through_timedatectl, Machine) {
    // The unit's ProtectSystem=strict keeps /etc read-only; timedated owns the link.
    fs::create_directories(root / "run/systemd/system");
    configure(kOneServer + "timezone = \"Europe/Paris\"\n");
    bool asked = false;
    for (const auto& action : actions())
        if (action.find("time/zone: timedatectl set-timezone Europe/Paris (was Etc/UTC)") == 0) asked = true;
    BOOST_TEST(asked);
}

BOOST_FIXTURE_TEST_CASE(no_time_section_touches_nothing, Machine) {
    configure("[node]\nname = \"n1\"\n");
    BOOST_TEST(actions().empty());
    BOOST_TEST(agent.status().empty());
    BOOST_TEST(runner->calls.empty());
}

BOOST_AUTO_TEST_SUITE_END()
