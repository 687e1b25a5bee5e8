#include <boost/test/unit_test.hpp>

#include "sanagent/process.h"

using namespace std::chrono_literals;
using sanagent::Command;
using sanagent::SystemCommandRunner;

BOOST_AUTO_TEST_CASE(runs_argv_and_captures_both_streams) {
    SystemCommandRunner runner;
    auto r = runner.run(Command{{"sh", "-c", "echo out; echo err >&2; exit 3"}});
    BOOST_TEST_REQUIRE(r.ok());
    BOOST_TEST(r->exit_code == 3);
    BOOST_TEST(r->out == "out\n");
    BOOST_TEST(r->err == "err\n");
}

BOOST_AUTO_TEST_CASE(arguments_are_not_interpreted_by_a_shell) {
    SystemCommandRunner runner;
    auto r = runner.run(Command{{"echo", "$(id)", ";", "*"}});
    BOOST_TEST_REQUIRE(r.ok());
    BOOST_TEST(r->out == "$(id) ; *\n");
}

BOOST_AUTO_TEST_CASE(feeds_stdin) {
    SystemCommandRunner runner;
    Command c{{"cat"}};
    c.stdin_data = std::string(200000, 'x');  // larger than a pipe buffer
    auto r = runner.run(c);
    BOOST_TEST_REQUIRE(r.ok());
    BOOST_TEST(r->out.size() == 200000u);
}

BOOST_AUTO_TEST_CASE(a_hung_command_is_killed_at_its_bound) {
    SystemCommandRunner runner;
    Command c{{"sleep", "30"}};
    c.timeout = 200ms;
    auto r = runner.run(c);
    BOOST_TEST_REQUIRE(!r.ok());
    BOOST_TEST(r.error().code == ETIMEDOUT);
    BOOST_TEST(r.error().message.find("sleep 30") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_missing_tool_is_reported_by_name) {
    SystemCommandRunner runner;
    auto r = runner.run(Command{{"no-such-tool-sanagent"}});
    BOOST_TEST_REQUIRE(!r.ok());
    BOOST_TEST(r.error().code == ENOENT);
    BOOST_TEST(r.error().message.find("no-such-tool-sanagent") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(check_exit_carries_the_tools_stderr) {
    SystemCommandRunner runner;
    Command c{{"sh", "-c", "echo '  Volume group \"x\" not found' >&2; exit 5"}};
    auto r = sanagent::check_exit(c, runner.run(c));
    BOOST_TEST_REQUIRE(!r.ok());
    BOOST_TEST(r.error().message.find("exited with status 5") != std::string::npos);
    BOOST_TEST(r.error().message.find("Volume group \"x\" not found") != std::string::npos);
}
