// NBD on TCP with TLS, against the clients an admin would use: qemu-io,
// nbdinfo and nbdcopy (libnbd) with a psktool-format key file, and nbdinfo
// with X.509 certificates made by openssl. A client without TLS, with the
// wrong key or without a certificate is refused, and the daemon serves on.
#include <sys/stat.h>

#include <boost/test/unit_test.hpp>

#include "cluster.h"
#include "sanagent/process.h"

using namespace sanrep_test;

namespace {

// A file only its owner may read, as sanrepd (and libnbd) insist.
std::string write_private(const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
    ::chmod(path.c_str(), 0600);
    return path;
}

std::string random_hex(std::size_t bytes) {
    std::random_device rd;
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < bytes; ++i) {
        auto b = rd() & 0xff;
        out += digits[b >> 4];
        out += digits[b & 15];
    }
    return out;
}

sanagent::CommandOutput run_ok(const std::vector<std::string>& argv, int seconds = 60) {
    sanagent::SystemCommandRunner run;
    auto r = run.run(sanagent::Command(argv, std::chrono::seconds(seconds)));
    BOOST_TEST_REQUIRE(r.ok(), (r.ok() ? "" : r.error().message));
    return *r;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(nbd_tls)

BOOST_AUTO_TEST_CASE(psk_tls_with_qemu_io_nbdinfo_nbdcopy_on_a_replicated_volume) {
    if (!have_tool("qemu-io") || !have_tool("nbdinfo") || !have_tool("nbdcopy")) {
        BOOST_TEST_MESSAGE("skipped: qemu-utils or libnbd-bin not installed (./run deps installs them)");
        return;
    }
    Cluster k;
    // qemu reads DIR/keys.psk; libnbd takes the file itself.
    std::filesystem::create_directory(k.path("qemu-psk"));
    const std::string secret = random_hex(32);
    const std::string keys = write_private(k.path("qemu-psk/keys.psk"), "alice:" + secret + "\n");
    const std::string wrong = write_private(k.path("wrong.psk"), "alice:" + random_hex(32) + "\n");
    const int nbd_port = free_port();
    const std::string tcp = "127.0.0.1:" + std::to_string(nbd_port);
    BOOST_TEST_REQUIRE(k.start_synced_pair(free_port(), "32M", {}, {"--nbd-tcp", tcp, "--nbd-tls-psk", keys}));
    const std::string uri = "nbds://alice@" + tcp + "/vol?tls-psk-file=" + keys;

    auto qemu = run_ok(
        {"qemu-io", "--object", "tls-creds-psk,id=tls0,endpoint=client,username=alice,dir=" + k.path("qemu-psk"),
         "--image-opts", "driver=nbd,host=127.0.0.1,port=" + std::to_string(nbd_port) + ",export=vol,tls-creds=tls0",
         "-c", "write -P 0xcd 0 1M", "-c", "read -P 0xcd 0 1M", "-c", "write -f -P 0x5a 2M 64k", "-c",
         "read -P 0x5a 2M 64k", "-c", "flush"});
    BOOST_TEST(qemu.exit_code == 0, qemu.out + qemu.err);
    BOOST_TEST(qemu.out.find("Pattern verification failed") == std::string::npos, qemu.out);

    auto info = run_ok({"nbdinfo", "--json", uri});
    BOOST_TEST_REQUIRE(info.exit_code == 0, info.err);
    auto j = nlohmann::json::parse(info.out, nullptr, false);
    BOOST_TEST_REQUIRE(!j.is_discarded());
    BOOST_TEST(j["exports"][0]["export-size"] == 32u << 20);

    // nbdcopy: several connections, requests in parallel, every reply
    // through the TLS session while the next requests are read.
    const std::string src = k.path("src.img"), out = k.path("out.img");
    {
        std::mt19937_64 rng(9);
        std::string data(32u << 20, '\0');
        for (std::size_t i = 0; i < data.size(); i += 8) {
            auto v = rng();
            std::memcpy(&data[i], &v, 8);
        }
        std::ofstream(src, std::ios::binary) << data;
    }
    auto in = run_ok({"nbdcopy", src, uri});
    BOOST_TEST(in.exit_code == 0, in.err);
    auto back = run_ok({"nbdcopy", uri, out});
    BOOST_TEST(back.exit_code == 0, back.err);

    // Refused: no TLS (FORCEDTLS answers TLS_REQD), and the wrong key.
    auto plain = run_ok({"qemu-io", "-f", "raw", "nbd://" + tcp + "/vol", "-c", "read 0 4k"});
    BOOST_TEST(plain.exit_code != 0);
    BOOST_TEST(plain.err.find("TLS negotiation required") != std::string::npos, plain.err);
    auto bad = run_ok({"nbdinfo", "nbds://alice@" + tcp + "/vol?tls-psk-file=" + wrong});
    BOOST_TEST(bad.exit_code != 0);
    // ... and the UNIX socket stays plain (local, 0600, for the kernel client).
    auto local = run_ok({"nbdinfo", "--size", "nbd+unix:///vol?socket=" + k.path("a.nbd")});
    BOOST_TEST(local.exit_code == 0, local.err);
    // The daemon serves on after the refusals.
    BOOST_TEST(run_ok({"nbdinfo", "--size", uri}).exit_code == 0);
    // Status says how NBD is served.
    auto st = k.status("a");
    BOOST_TEST(st["nbd"].value("tcp", "") == tcp, st.dump());
    BOOST_TEST(st["nbd"].value("tls", "") == "psk");
    auto shown = run_ok({SANCTL_PATH, "replica", "status", "vol", "--control", k.path("a.ctl")});
    BOOST_TEST(shown.out.find(", tcp " + tcp + " (TLS psk), ") != std::string::npos, shown.out);

    BOOST_TEST(k.stop("a") == 0);
    BOOST_TEST(k.stop("b") == 0);
    const auto expected = read_file(src);
    BOOST_TEST((read_file(out) == expected));
    BOOST_TEST((read_file(k.path("a.img")) == expected));
    BOOST_TEST((read_file(k.path("b.img")) == expected));
    const auto log = read_file(k.path("a.log"));
    BOOST_TEST(log.find("requires TLS (PSK ") != std::string::npos, log);
    BOOST_TEST(log.find("psk identity alice") != std::string::npos);
    BOOST_TEST(log.find("client refused") != std::string::npos);
    BOOST_TEST(log.find(secret) == std::string::npos);  // the key is never logged
}

BOOST_AUTO_TEST_CASE(x509_tls_asks_clients_for_a_certificate_from_the_ca) {
    if (!have_tool("nbdinfo") || !have_tool("openssl")) {
        BOOST_TEST_MESSAGE("skipped: libnbd-bin or openssl not installed (./run deps installs them)");
        return;
    }
    Cluster k;
    // A CA, a server certificate for 127.0.0.1 and a client certificate, the
    // way an admin's PKI would hand them out.
    const std::string pki = k.path("pki"), srv = k.path("srv"), cli = k.path("cli"), ca_only = k.path("ca-only");
    for (const auto& d : {pki, srv, cli, ca_only}) std::filesystem::create_directory(d);
    auto ca =
        run_ok({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                pki + "/ca-key.pem", "-out", pki + "/ca-cert.pem", "-days", "2", "-subj", "/CN=sanrep-test-ca"});
    BOOST_TEST_REQUIRE(ca.exit_code == 0, ca.err);
    for (std::string who : {"server", "client"}) {
        auto req =
            run_ok({"openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                    pki + "/" + who + "-key.pem", "-out", pki + "/" + who + ".csr", "-subj", "/CN=" + who});
        BOOST_TEST_REQUIRE(req.exit_code == 0, req.err);
        std::ofstream(pki + "/" + who + ".ext")
            << "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=" << (who == "server" ? "serverAuth" : "clientAuth")
            << "\n";
        auto sign = run_ok({"openssl", "x509", "-req", "-in", pki + "/" + who + ".csr", "-CA", pki + "/ca-cert.pem",
                            "-CAkey", pki + "/ca-key.pem", "-CAcreateserial", "-days", "2", "-out",
                            pki + "/" + who + "-cert.pem", "-extfile", pki + "/" + who + ".ext"});
        BOOST_TEST_REQUIRE(sign.exit_code == 0, sign.err);
    }
    auto install = [&](const std::string& from, const std::string& to, bool secret) {
        std::filesystem::copy_file(pki + "/" + from, to);
        if (secret) ::chmod(to.c_str(), 0600);
    };
    install("ca-cert.pem", srv + "/ca-cert.pem", false);
    install("server-cert.pem", srv + "/server-cert.pem", false);
    install("server-key.pem", srv + "/server-key.pem", true);
    install("ca-cert.pem", cli + "/ca-cert.pem", false);
    install("client-cert.pem", cli + "/client-cert.pem", false);
    install("client-key.pem", cli + "/client-key.pem", true);
    install("ca-cert.pem", ca_only + "/ca-cert.pem", false);

    const std::string tcp = "127.0.0.1:" + std::to_string(free_port());
    k.start_primary("a", "vol", 0, "16M", {"--nbd-tcp", tcp, "--nbd-tls-dir", srv});
    const std::string uri = "nbds://" + tcp + "/vol?tls-certificates=";
    auto ok = run_ok({"nbdinfo", "--size", uri + cli});
    BOOST_TEST(ok.exit_code == 0, ok.err);
    BOOST_TEST(ok.out == std::to_string(16u << 20) + "\n");
    auto no_cert = run_ok({"nbdinfo", "--size", uri + ca_only});
    BOOST_TEST(no_cert.exit_code != 0);
    BOOST_TEST(run_ok({"nbdinfo", "--size", uri + cli}).exit_code == 0);
    BOOST_TEST(k.stop("a") == 0);
    const auto log = read_file(k.path("a.log"));
    BOOST_TEST(log.find("certificate CN=client") != std::string::npos, log);
    BOOST_TEST(log.find("client refused") != std::string::npos, log);

    // The client's certificate revoked (ca-crl.pem, as qemu and nbdkit read
    // it): refused from the next start on.
    std::ofstream(pki + "/ca.cnf") << "[ca]\ndefault_ca = d\n[d]\ndatabase = " << pki
                                   << "/index.txt\ncrlnumber = " << pki
                                   << "/crlnumber\ndefault_md = sha256\ndefault_crl_days = 2\n";
    std::ofstream(pki + "/index.txt");
    std::ofstream(pki + "/crlnumber") << "01\n";
    const std::vector<std::string> ca_args = {
        "openssl", "ca", "-config", pki + "/ca.cnf", "-keyfile", pki + "/ca-key.pem", "-cert", pki + "/ca-cert.pem"};
    auto with = [&](std::vector<std::string> more) {
        auto argv = ca_args;
        argv.insert(argv.end(), more.begin(), more.end());
        return run_ok(argv);
    };
    auto revoke = with({"-revoke", pki + "/client-cert.pem"});
    BOOST_TEST_REQUIRE(revoke.exit_code == 0, revoke.err);
    auto crl = with({"-gencrl", "-out", srv + "/ca-crl.pem"});
    BOOST_TEST_REQUIRE(crl.exit_code == 0, crl.err);
    k.start_primary("a", "vol", 0, "16M", {"--nbd-tcp", tcp, "--nbd-tls-dir", srv});
    BOOST_TEST(run_ok({"nbdinfo", "--size", uri + cli}).exit_code != 0);
    BOOST_TEST(k.stop("a") == 0);
    BOOST_TEST(read_file(k.path("a.log")).find("not revoked in ca-crl.pem") != std::string::npos);

    // A CA file that is there but cannot be read stops sanrepd: it never
    // means "clients are not checked".
    std::filesystem::remove(srv + "/ca-crl.pem");
    std::filesystem::remove(srv + "/ca-cert.pem");
    std::filesystem::create_symlink(k.path("missing-ca.pem"), srv + "/ca-cert.pem");
    k.start("c", {"--volume", "vol", "--role", "primary", "--replica", k.path("c.img"), "--size", "16M", "--nbd-socket",
                  k.path("c.nbd"), "--control", k.path("c.ctl"), "--nbd-tcp", tcp, "--nbd-tls-dir", srv});
    int code = -1;
    for (int i = 0; i < 100 && code < 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        if (read_file(k.path("c.log")).find("ca-cert.pem") != std::string::npos) code = k.stop("c");
    }
    BOOST_TEST(code == 1, read_file(k.path("c.log")));
    BOOST_TEST(!std::filesystem::exists(k.path("c.img")));  // refused before any volume was opened
}

BOOST_AUTO_TEST_SUITE_END()
