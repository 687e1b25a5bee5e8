// The open-iscsi side of the host: session listing, node records (CHAP kept
// out of argv), exit codes in words, name checks, and finding a LUN's disk in
// a fake sysfs tree.
#include "sanagent/lvm/initiator.h"

#include <sys/stat.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <map>

using namespace sanagent;
using namespace sanagent::lvm;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        char tmpl[] = "/tmp/sanagent-initiator-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

void write(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
}

// Records every argv; answers from a table, else exit 0 with no output.
class FakeRunner : public CommandRunner {
public:
    std::vector<std::string> calls;
    std::map<std::string, CommandOutput> answers;
    Result<CommandOutput> run(const Command& c) override {
        calls.push_back(c.display());
        auto it = answers.find(c.display());
        return it == answers.end() ? CommandOutput{} : it->second;
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(initiator)

BOOST_AUTO_TEST_CASE(sessions_from_iscsiadm) {
    auto s = parse_sessions(
        "tcp: [1] 192.168.77.11:3260,1 iqn.2026-11.org.sanagent.lab:g:vm1 (non-flash)\n"
        "tcp: [12] 10.0.10.12:3261,2 iqn.2026-11.org.example:g:db (non-flash)\n"
        "garbage line\n");
    BOOST_TEST_REQUIRE(s.size() == 2u);
    BOOST_TEST(s[0].sid == 1);
    BOOST_TEST(s[0].portal == "192.168.77.11:3260");
    BOOST_TEST(s[0].target == "iqn.2026-11.org.sanagent.lab:g:vm1");
    BOOST_TEST(s[1].sid == 12);
    BOOST_TEST(s[1].tpgt == 2);
}

BOOST_AUTO_TEST_CASE(node_record_gets_chap_startup_and_timeout) {
    const std::string record =
        "# BEGIN RECORD 2.1.8\nnode.name = iqn.2026-11.org.example:g:vm1\nnode.startup = manual\n"
        "node.session.auth.authmethod = None\nnode.session.timeo.replacement_timeout = 120\n# END RECORD\n";
    NodeSettings settings;
    settings.chap = ChapCredentials{"xs01", "secret-0123456789"};
    auto out = update_node_record(record, settings);
    BOOST_TEST(out.find("node.startup = automatic\n") != std::string::npos);
    BOOST_TEST(out.find("node.conn[0].startup = automatic\n") != std::string::npos);
    BOOST_TEST(out.find("node.session.auth.authmethod = CHAP\n") != std::string::npos);
    BOOST_TEST(out.find("node.session.auth.username = xs01\n") != std::string::npos);
    BOOST_TEST(out.find("node.session.auth.password = secret-0123456789\n# END RECORD\n") != std::string::npos);
    BOOST_TEST(out.find("manual") == std::string::npos);
    // Applying the same settings again changes nothing (no rewrite on re-apply).
    BOOST_TEST(update_node_record(out, settings) == out);
    // Dropping CHAP removes the old credentials.
    auto plain = update_node_record(out, NodeSettings{});
    BOOST_TEST(plain.find("password") == std::string::npos);
    BOOST_TEST(plain.find("node.session.auth.authmethod = None\n") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(configure_writes_the_record_not_an_argv) {
    TempDir dir;
    const auto rec = dir.path / "nodes/iqn.2026-11.org.example:g:vm1/10.0.0.1,3260,1/default";
    write(rec, "node.name = iqn.2026-11.org.example:g:vm1\n# END RECORD\n");
    FakeRunner runner;
    Initiator initiator(runner, dir.path / "nodes", dir.path / "sys");
    NodeSettings settings;
    settings.chap = ChapCredentials{"xs01", "secret-0123456789"};
    auto s = initiator.configure("iqn.2026-11.org.example:g:vm1", "10.0.0.1:3260", settings);
    BOOST_TEST_REQUIRE(s.ok(), (s.ok() ? "" : s.error().message));
    BOOST_TEST(runner.calls.empty());
    std::ifstream in(rec);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    BOOST_TEST(text.find("node.session.auth.password = secret-0123456789") != std::string::npos);
    struct stat st {};
    BOOST_TEST_REQUIRE(::stat(rec.c_str(), &st) == 0);
    BOOST_TEST((st.st_mode & 0777) == 0600u);
    auto missing = initiator.configure("iqn.2026-11.org.example:g:other", "10.0.0.1", settings);
    BOOST_TEST(!missing.ok());
}

BOOST_AUTO_TEST_CASE(login_failure_says_chap) {
    FakeRunner runner;
    runner.answers["iscsiadm -m node -T iqn.2026-11.org.example:g:vm1 -p 10.0.0.1:3260 --login"] =
        CommandOutput{24, "",
                      "iscsiadm: Could not login to [iface: default, target: ...].\n"
                      "iscsiadm: initiator reported error (24 - iSCSI login failed due to authorization failure)\n"};
    Initiator initiator(runner, "/nonexistent", "/nonexistent");
    auto s = initiator.login("iqn.2026-11.org.example:g:vm1", "10.0.0.1:3260");
    BOOST_TEST_REQUIRE(!s.ok());
    BOOST_TEST(s.error().message.find("CHAP authentication failed") != std::string::npos);
    BOOST_TEST(s.error().message.find("iqn.2026-11.org.example:g:vm1 at 10.0.0.1:3260") != std::string::npos);
    BOOST_TEST(s.error().message.find("authorization failure") != std::string::npos, s.error().message);
    // Already logged in is success; no session to log out of is success.
    runner.answers["iscsiadm -m node -T iqn.2026-11.org.example:g:vm1 -p 10.0.0.1:3260 --login"] =
        CommandOutput{15, "", ""};
    BOOST_TEST(initiator.login("iqn.2026-11.org.example:g:vm1", "10.0.0.1:3260").ok());
    runner.answers["iscsiadm -m node -T iqn.2026-11.org.example:g:vm1 -p 10.0.0.1:3260 --logout"] =
        CommandOutput{21, "", ""};
    BOOST_TEST(initiator.logout("iqn.2026-11.org.example:g:vm1", "10.0.0.1:3260").ok());
}

BOOST_AUTO_TEST_CASE(names_are_checked) {
    BOOST_TEST(is_valid_iqn("iqn.2026-11.org.sanagent.lab:g:vm1"));
    BOOST_TEST(!is_valid_iqn("iqn.2026-11.org.example:../../etc"));
    BOOST_TEST(!is_valid_iqn("iqn.2026-11.org.example:a b"));
    BOOST_TEST(!is_valid_iqn("eui.0123456789abcdef"));
    BOOST_TEST(!is_valid_iqn("iqn.26-11.org.example"));
    BOOST_TEST(is_valid_portal("192.168.77.11"));
    BOOST_TEST(is_valid_portal("192.168.77.11:3260"));
    BOOST_TEST(!is_valid_portal("192.168.77.256"));
    BOOST_TEST(!is_valid_portal("192.168.77.11:70000"));
    BOOST_TEST(!is_valid_portal("host.example:3260"));
    BOOST_TEST(!is_valid_portal("1.2.3.4:-1"));
    BOOST_TEST(portal_with_default_port("10.0.0.1") == "10.0.0.1:3260");
}

BOOST_AUTO_TEST_CASE(secret_files_must_be_private) {
    TempDir dir;
    const auto file = dir.path / "chap";
    write(file, "secret-0123456789\n");
    ::chmod(file.c_str(), 0644);
    BOOST_TEST(!read_secret_file(file, ::getuid()).ok());
    ::chmod(file.c_str(), 0600);
    auto s = read_secret_file(file, ::getuid());
    BOOST_TEST_REQUIRE(s.ok(), (s.ok() ? "" : s.error().message));
    BOOST_TEST(*s == "secret-0123456789");
    write(file, "short\n");
    BOOST_TEST(!read_secret_file(file, ::getuid()).ok());
    BOOST_TEST(!read_secret_file(file, ::getuid() + 1).ok());
}

BOOST_AUTO_TEST_CASE(lun_device_through_sysfs) {
    TempDir dir;
    const auto sys = dir.path / "sys";
    write(sys / "class/iscsi_session/session1/targetname", "iqn.2026-11.org.example:g:other\n");
    write(sys / "class/iscsi_session/session2/targetname", "iqn.2026-11.org.example:g:vm1\n");
    fs::create_directories(sys / "devices/platform/host3/session2/target3:0:0/3:0:0:0/block/sdc");
    fs::create_directory_symlink(sys / "devices/platform/host3/session2", sys / "class/iscsi_session/session2/device");
    FakeRunner runner;
    Initiator initiator(runner, dir.path / "nodes", sys);
    auto dev = initiator.lun_device("iqn.2026-11.org.example:g:vm1");
    BOOST_TEST_REQUIRE(dev.ok(), (dev.ok() ? "" : dev.error().message));
    BOOST_TEST(*dev == "/dev/sdc");
    BOOST_TEST(!initiator.lun_device("iqn.2026-11.org.example:g:other").ok());
    BOOST_TEST(!initiator.lun_device("iqn.2026-11.org.example:g:vm1", 1).ok());
}

BOOST_AUTO_TEST_SUITE_END()
