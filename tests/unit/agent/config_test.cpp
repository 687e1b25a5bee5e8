#define BOOST_TEST_MODULE agent
#include "sanagent/agent/config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <fstream>
#include <sstream>

#include "sanagent/agent/agent.h"
#include "test_dir.h"

using namespace sanagent::agent;
using sanagent::agent::test::TempDir;

namespace {

Config load(const TempDir& dir, Diagnostics& diagnostics) {
    LoadOptions options;
    options.config_dir = dir.root;
    options.secret_owner = ::getuid();
    return load_config(options, diagnostics);
}

std::vector<std::string> lines(const Diagnostics& diagnostics) {
    std::vector<std::string> out;
    for (const auto& d : diagnostics.items()) out.push_back(d.text());
    return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(config)

BOOST_AUTO_TEST_CASE(dropins_override_key_by_key_in_lexical_order) {
    TempDir dir;
    dir.write("sanagent.conf", "[node]\nname = \"n1\"\nroles = [\"storage\"]\n\n[volume.vm1]\nsize = \"10G\"\n");
    dir.write("conf.d/20-b.conf", "[volume.vm1]\nsize = \"30G\"\n");
    auto a = dir.write("conf.d/10-a.conf", "[volume.vm1]\nsize = \"20G\"\nprovisioning = \"full\"\n");
    auto b = (dir.root / "conf.d/20-b.conf").string();
    dir.write("conf.d/ignored.txt", "not = toml at all [[[");
    Diagnostics diagnostics;
    auto config = load(dir, diagnostics);
    BOOST_TEST(diagnostics.empty(), diagnostics.text());
    BOOST_TEST(config.get_size("volume", "vm1", "size") == 30ull << 30);
    BOOST_TEST(config.value("volume", "vm1", "size")->origin.text() == b + ":2");
    BOOST_TEST(config.get_string("volume", "vm1", "provisioning") == "full");
    BOOST_TEST(config.value("volume", "vm1", "provisioning")->origin.text() == a + ":3");
    BOOST_TEST(config.get_string("node", "", "name") == "n1");
    BOOST_TEST(config.get_integer("volume", "vm1", "replication") == 1);  // schema default
    BOOST_TEST(config.get_duration("agent", "", "interval").count() == 60000);
}

BOOST_AUTO_TEST_CASE(every_error_class_with_file_line_and_key) {
    TempDir dir;
    ::mkdir((dir.root / "secrets").c_str(), 0700);
    auto loose = dir.write("secrets/loose", "s3cret\n");
    ::chmod(loose.c_str(), 0644);
    auto f = dir.write("conf.d/10-bad.conf",
                       "[node]\n"                                  // 1
                       "nmae = \"n1\"\n"                           // 2 unknown key
                       "[frobnicate]\n"                            // 3 unknown section
                       "x = 1\n"                                   // 4
                       "[volume.Bad_Name]\n"                       // 5 unsafe name
                       "size = \"1G\"\n"                           // 6
                       "[volume.vm1]\n"                            // 7
                       "size = \"10Q\"\n"                          // 8 bad size
                       "replication = 4\n"                         // 9 out of range
                       "servers = [\"xs01\", \"nobody\"]\n"        // 10 dangling reference
                       "provisioning = \"fat\"\n"                  // 11 bad choice
                       "[server.xs01]\n"                           // 12
                       "iqn = \"iqn.2026-11.org.example:xs01\"\n"  // 13
                       "chap_secret_file = \"" +
                           loose +
                           "\"\n"                  // 14 secrets 0644
                           "[server.xs02]\n"       // 15 missing iqn
                           "chap_user = 7\n"       // 16 wrong type
                           "[bond.san0]\n"         // 17
                           "[link.san0]\n"         // 18 duplicate interface
                           "[agent]\n"             // 19
                           "interval = \"5\"\n");  // 20 duration without unit
    Diagnostics diagnostics;
    load(dir, diagnostics);
    std::vector<std::string> expected = {
        f + ":2: [node] nmae: unknown key; expected one of name, roles, target_dbroot, portals",
        f + ":3: [frobnicate]: unknown section; expected one of agent, node, group, cluster, time, bond, link, pool, "
            "server, volume, sr, vdi",
        f + ":5: [volume.Bad_Name]: unsafe name; expected [a-z0-9][a-z0-9.-]*, at most 63 characters",
        f + ":8: [volume.vm1] size: expected a size: \"10Q\" is not a size like \"512M\" or \"10G\" (binary units K, "
            "M, G, T, P)",
        f + ":9: [volume.vm1] replication: expected an integer from 1 to 3, got 4",
        f + ":11: [volume.vm1] provisioning: expected one of thin|full, got \"fat\"",
        f + ":16: [server.xs02] chap_user: expected a string",
        f + ":20: [agent] interval: expected a duration: \"5\" is not a duration like \"100ms\", \"5s\", \"2m\" or "
            "\"1h\"",
        f + ":10: [volume.vm1] servers: expected the name of a [server.NAME] table; \"nobody\" is not defined",
        f + ":14: [server.xs01] chap_secret_file: expected a file owned by uid " + std::to_string(::getuid()) +
            " with mode 0600: " + loose,
        f + ":15: [server.xs02] iqn: required key is missing",
        f + ":18: [link.san0]: duplicate interface name; also declared as [bond.san0] at " + f + ":17",
    };
    auto got = lines(diagnostics);
    BOOST_TEST(got.size() == expected.size(), diagnostics.text());
    for (const auto& e : expected)
        BOOST_TEST((std::find(got.begin(), got.end(), e) != got.end()), "missing: " << e << "\ngot:\n"
                                                                                    << diagnostics.text());
}

BOOST_AUTO_TEST_CASE(syntax_errors_name_the_line) {
    TempDir dir;
    auto f = dir.write("sanagent.conf", "[node]\nname = \"a\"\nname = \"b\"\n");
    Diagnostics diagnostics;
    load(dir, diagnostics);
    BOOST_TEST_REQUIRE(diagnostics.size() == 1u);
    BOOST_TEST(diagnostics.items()[0].text().rfind(f + ":3: syntax error: ", 0) == 0u, diagnostics.text());
}

BOOST_AUTO_TEST_CASE(secrets_must_be_root_owned_regular_files) {
    TempDir dir;
    auto good = dir.write("secrets/good", "x");
    ::chmod(good.c_str(), 0600);
    auto foreign = dir.write("secrets/foreign", "x");
    ::chmod(foreign.c_str(), 0600);
    bool can_chown = ::chown(foreign.c_str(), 65534, 65534) == 0;
    ::symlink(good.c_str(), (dir.root / "secrets/link").c_str());
    auto f = dir.write("conf.d/a.conf", "[server.a]\niqn = \"iqn.x:a\"\nchap_secret_file = \"" + good +
                                            "\"\n[server.b]\niqn = \"iqn.x:b\"\nchap_secret_file = \"" + foreign +
                                            "\"\n[server.c]\niqn = \"iqn.x:c\"\nchap_secret_file = \"" +
                                            (dir.root / "secrets/link").string() +
                                            "\"\n[server.d]\niqn = \"iqn.x:d\"\nchap_secret_file = \"relative/x\"\n");
    Diagnostics diagnostics;
    load(dir, diagnostics);
    auto text = diagnostics.text();
    BOOST_TEST(text.find("[server.a]") == std::string::npos, text);
    if (can_chown)
        BOOST_TEST(text.find(f + ":6: [server.b] chap_secret_file: expected a file owned by uid") != std::string::npos,
                   text);
    BOOST_TEST(text.find(f + ":9: [server.c] chap_secret_file: expected a regular file (not a link or directory)") !=
                   std::string::npos,
               text);
    BOOST_TEST(text.find(f + ":12: [server.d] chap_secret_file: expected an absolute path, got \"relative/x\"") !=
                   std::string::npos,
               text);
}

BOOST_AUTO_TEST_CASE(check_output_redacts_nothing_secret_and_explains_origins) {
    TempDir dir;
    auto secret = dir.write("secrets/xs01", "TOPSECRETVALUE\n");
    ::chmod(secret.c_str(), 0600);
    auto f =
        dir.write("sanagent.conf",
                  "[server.xs01]\niqn = \"iqn.x:xs01\"\nchap_user = \"xs01\"\nchap_secret_file = \"" + secret + "\"\n");
    Diagnostics diagnostics;
    auto config = load(dir, diagnostics);
    BOOST_TEST(diagnostics.empty(), diagnostics.text());
    auto plain = render_config(config, false);
    auto explained = render_config(config, true);
    BOOST_TEST(plain.find("TOPSECRETVALUE") == std::string::npos);
    BOOST_TEST(explained.find("TOPSECRETVALUE") == std::string::npos);
    BOOST_TEST(plain.find("[server.xs01]\niqn = \"iqn.x:xs01\"\n") != std::string::npos, plain);
    BOOST_TEST(explained.find("chap_user = \"xs01\"  # " + f + ":3") != std::string::npos, explained);
}

BOOST_AUTO_TEST_CASE(schema_defaults_parse_and_docs_match) {
    Config empty;
    for (const auto& section : schema())
        for (const auto& key : section.keys) {
            // Reading every key through the getters parses every default.
            switch (key.type) {
                case ValueType::integer:
                case ValueType::size:
                case ValueType::duration:
                case ValueType::percent:
                    (void)empty.get_integer(section.name, "", key.key);
                    break;
                case ValueType::boolean:
                    (void)empty.get_bool(section.name, "", key.key);
                    break;
                case ValueType::string_list:
                case ValueType::name_list:
                    (void)empty.get_list(section.name, "", key.key);
                    break;
                case ValueType::string_map:
                    break;
                default:
                    (void)empty.get_string(section.name, "", key.key);
            }
        }
    std::ifstream in(std::string(SANAGENT_SOURCE_DIR) + "/docs/config.md");
    BOOST_TEST_REQUIRE(static_cast<bool>(in), "docs/config.md is missing");
    std::stringstream text;
    text << in.rdbuf();
    const std::string doc = text.str();
    const std::string begin = "<!-- BEGIN SCHEMA: generated by `sanctl config schema --markdown` -->\n";
    const std::string end = "<!-- END SCHEMA -->";
    auto b = doc.find(begin);
    auto e = doc.find(end);
    BOOST_TEST_REQUIRE((b != std::string::npos && e != std::string::npos));
    BOOST_TEST(doc.substr(b + begin.size(), e - b - begin.size()) == schema_markdown(),
               "docs/config.md is stale: regenerate its table with `sanctl config schema --markdown`");
}

BOOST_AUTO_TEST_CASE(packaged_example_config_is_valid) {
    for (const char* dir :
         {"/packaging", "/packaging/examples/storage-node", "/packaging/examples/host",
          "/packaging/examples/two-node-cluster/v8.1-01", "/packaging/examples/two-node-cluster/v8.1-02"}) {
        AgentOptions options;
        options.load.config_dir = std::string(SANAGENT_SOURCE_DIR) + dir;
        Diagnostics diagnostics;
        auto config = load_and_validate(options, diagnostics);
        BOOST_TEST(diagnostics.empty(), diagnostics.text());
        BOOST_TEST(config.find("node") != nullptr);
    }
}

BOOST_AUTO_TEST_SUITE_END()
