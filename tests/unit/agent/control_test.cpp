#include "sanagent/agent/control.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <thread>

#include "test_dir.h"

using namespace sanagent::agent;
using namespace std::chrono_literals;
using sanagent::UniqueFd;

namespace {

struct Pair {
    UniqueFd server, client;
    Pair() {
        int fds[2];
        BOOST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
        server.reset(fds[0]);
        client.reset(fds[1]);
    }
    // Send `bytes`, serve, return the reply line.
    std::string exchange(const std::string& bytes, bool close_after = false) {
        std::thread writer([&] {
            std::size_t off = 0;
            while (off < bytes.size()) {
                auto n = ::send(client.get(), bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
                if (n <= 0) break;
                off += static_cast<std::size_t>(n);
            }
            if (close_after) ::shutdown(client.get(), SHUT_WR);
        });
        auto served = serve_client(
            server.get(), [](const Request& r) { return nlohmann::json(request_name(r.kind)); }, 500ms);
        writer.join();
        BOOST_TEST(served.ok());
        std::string reply;
        char c;
        while (::recv(client.get(), &c, 1, MSG_DONTWAIT) == 1 && c != '\n') reply += c;
        return reply;
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(control)

BOOST_AUTO_TEST_CASE(parses_the_four_requests) {
    for (auto kind : {RequestKind::status, RequestKind::plan, RequestKind::apply, RequestKind::reload}) {
        auto line = encode_request({kind});
        BOOST_TEST(line.back() == '\n');
        auto parsed = parse_request(std::string_view(line).substr(0, line.size() - 1));
        BOOST_TEST_REQUIRE(parsed.ok());
        BOOST_TEST((parsed->kind == kind));
    }
}

BOOST_AUTO_TEST_CASE(rejects_malformed_requests) {
    for (const char* bad : {"", "{", "[]", "\"status\"", "{\"request\": 1}", "{\"request\": \"destroy\"}",
                            "{\"request\": \"status\", \"extra\": 1}", "{\"Request\": \"status\"}", "null",
                            "{\"request\": \"status\"} trailing", "\xff\xfe"})
        BOOST_TEST(!parse_request(bad).ok(), bad);
    BOOST_TEST(parse_request(std::string(kMaxRequestBytes, ' ')).error().code == EMSGSIZE);
}

BOOST_AUTO_TEST_CASE(answers_a_request_over_a_socket) {
    Pair p;
    BOOST_TEST(p.exchange("{\"request\":\"plan\"}\n") == R"({"ok":true,"result":"plan"})");
}

BOOST_AUTO_TEST_CASE(malformed_input_gets_an_error_reply) {
    Pair p;
    BOOST_TEST(p.exchange("hello\n") == R"({"error":"request is not a JSON object","ok":false})");
}

BOOST_AUTO_TEST_CASE(oversized_input_gets_an_error_reply) {
    Pair p;
    auto reply = p.exchange(std::string(kMaxRequestBytes + 100, 'x'));
    BOOST_TEST(reply == R"({"error":"message larger than 65536 bytes","ok":false})");
}

BOOST_AUTO_TEST_CASE(a_silent_client_is_timed_out_not_waited_for) {
    Pair p;
    auto start = std::chrono::steady_clock::now();
    auto reply = p.exchange("{\"request\":");
    BOOST_TEST((std::chrono::steady_clock::now() - start < 2s));
    BOOST_TEST(reply == R"({"error":"no complete line within the time limit","ok":false})");
}

BOOST_AUTO_TEST_CASE(socket_is_private_and_round_trips) {
    sanagent::agent::test::TempDir dir;
    auto path = dir.root / "run/control.sock";
    auto listener = listen_control_socket(path);
    BOOST_TEST_REQUIRE(listener.ok());
    struct stat st {};
    BOOST_TEST_REQUIRE(::stat(path.c_str(), &st) == 0);
    BOOST_TEST((st.st_mode & 0777) == 0600u);
    std::thread server([&] {
        for (int i = 0; i < 100; ++i) {
            int fd = ::accept4(listener->get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (fd >= 0) {
                UniqueFd client(fd);
                (void)serve_client(
                    client.get(),
                    [](const Request&) {
                        return nlohmann::json{{"objects", 0}};
                    },
                    1s);
                return;
            }
            std::this_thread::sleep_for(10ms);
        }
    });
    auto reply = control_call(path, {RequestKind::status}, 2s);
    server.join();
    BOOST_TEST_REQUIRE(reply.ok(), (reply.ok() ? "" : reply.error().message));
    BOOST_TEST((*reply)["objects"] == 0);
    // A second listener replaces the stale socket file.
    listener->reset();
    BOOST_TEST(listen_control_socket(path).ok());
    BOOST_TEST(!control_call(dir.root / "absent.sock", {RequestKind::status}, 1s).ok());
}

BOOST_AUTO_TEST_SUITE_END()
