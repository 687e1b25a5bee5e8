// NBD's TLS credentials: the PSK file's format and the owner and mode checks
// of the secrets. The handshakes themselves run against real clients
// (nbdinfo, qemu-io) in the host tests.
#include "sanagent/replicator/tls.h"

#include <sys/stat.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>

using namespace sanagent::replicator;

namespace {

struct TempDir {
    std::filesystem::path path;
    TempDir() {
        char tmpl[] = "/tmp/sanrep-tls-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~TempDir() { std::filesystem::remove_all(path); }
    std::string write(const std::string& name, const std::string& text, mode_t mode = 0600) const {
        auto p = (path / name).string();
        std::ofstream(p) << text;
        ::chmod(p.c_str(), mode);
        return p;
    }
};

const std::string kKey = "0123456789abcdef0123456789abcdef";  // 16 bytes

}  // namespace

BOOST_AUTO_TEST_SUITE(nbd_tls)

BOOST_AUTO_TEST_CASE(psk_file_in_psktool_format) {
    TempDir d;
    auto ok = TlsCredentials::load_psk(d.write("ok.psk", "# comment\nalice:" + kKey + "\r\n\nbob:" + kKey + kKey));
    BOOST_TEST_REQUIRE(ok.ok(), (ok ? "" : ok.error().message));
    BOOST_TEST((*ok)->describe().find("PSK ") == 0u);
}

BOOST_AUTO_TEST_CASE(psk_file_errors_name_the_line) {
    TempDir d;
    struct Case {
        std::string text;
        std::string says;
    } cases[] = {
        {"alice" + kKey + "\n", ":1: expected IDENTITY:HEXKEY"},
        {"# keys\nalice:xyz" + kKey + "\n", ":2: the key is not hexadecimal"},
        {"alice:0011\n", ":1: the key is 2 bytes"},
        {"alice:" + kKey + "\nalice:" + kKey + "\n", ":2: identity 'alice' is given twice"},
        {"# nothing\n", "no IDENTITY:HEXKEY line"},
    };
    for (const auto& c : cases) {
        auto r = TlsCredentials::load_psk(d.write("bad.psk", c.text));
        BOOST_TEST_REQUIRE(!r.ok(), c.text);
        BOOST_TEST(r.error().code == EINVAL);
        BOOST_TEST(r.error().message.find(c.says) != std::string::npos, r.error().message);
    }
}

BOOST_AUTO_TEST_CASE(secrets_must_be_private) {
    TempDir d;
    auto open = TlsCredentials::load_psk(d.write("open.psk", "alice:" + kKey + "\n", 0644));
    BOOST_TEST_REQUIRE(!open.ok());
    BOOST_TEST(open.error().code == EPERM);
    BOOST_TEST(open.error().message.find("chmod 0600") != std::string::npos);
    std::filesystem::create_symlink(d.write("real.psk", "alice:" + kKey + "\n"), d.path / "link.psk");
    BOOST_TEST(!TlsCredentials::load_psk((d.path / "link.psk").string()).ok());
    BOOST_TEST(TlsCredentials::load_psk((d.path / "missing.psk").string()).error().code == ENOENT);
    // An X.509 directory's key is held to the same rule, before the
    // certificate is looked at.
    d.write("server-key.pem", "-----BEGIN PRIVATE KEY-----\n", 0640);
    d.write("server-cert.pem", "-----BEGIN CERTIFICATE-----\n", 0644);
    auto x = TlsCredentials::load_x509(d.path.string());
    BOOST_TEST_REQUIRE(!x.ok());
    BOOST_TEST(x.error().code == EPERM, x.error().message);
}

BOOST_AUTO_TEST_SUITE_END()
