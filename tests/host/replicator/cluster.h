// Host-level test fixture for sanrepd: runs real daemons (fork + execv, argv
// only) in a temporary directory on loopback, talks NBD to them with a small
// client built on the project's own codec, and reads their control sockets.
// Everything it starts is killed and everything it creates is removed in the
// destructor, also when a test fails half-way.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/results_collector.hpp>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "sanagent/replicator/nbd_handshake.h"
#include "sanagent/replicator/nbd_protocol.h"
#include "sanagent/process.h"
#include "sanagent/replicator/net.h"

namespace sanrep_test {

namespace fs = std::filesystem;
using namespace sanagent;
using namespace sanagent::replicator;

inline std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

// Whether a client tool (qemu-io, nbdinfo, openssl) is installed: tests
// that need one say they are skipped without it.
inline bool have_tool(const std::string& tool) {
    sanagent::SystemCommandRunner run;
    auto r = run.run(sanagent::Command({"sh", "-c", "command -v \"$0\"", tool}, std::chrono::seconds(5)));
    return r.ok() && r->exit_code == 0;
}

// A picked-free loopback port: bind port 0, read it back, close.
inline int free_port() {
    auto fd = tcp_listen("127.0.0.1:0");
    if (!fd) return 0;
    sockaddr_in a{};
    socklen_t len = sizeof a;
    ::getsockname(fd->get(), reinterpret_cast<sockaddr*>(&a), &len);
    return ntohs(a.sin_port);
}

class NbdClient {
public:
    static Result<NbdClient> connect(const std::string& socket, const std::string& name) {
        auto fd = unix_connect(socket);
        if (!fd) return fd.error();
        NbdClient c;
        c.fd_ = std::move(*fd);
        set_recv_timeout(c.fd_.get(), 20'000);  // a hung server fails the test, not the suite's timeout
        std::vector<std::uint8_t> greeting(nbd::kGreetingSize);
        if (auto st = read_full(c.fd_.get(), greeting); !st) return st.error();
        std::uint8_t flags[4] = {0, 0, 0, nbd::kFlagFixedNewstyle | nbd::kFlagNoZeroes};
        if (auto st = write_full(c.fd_.get(), flags); !st) return st.error();
        auto go = nbd::encode_option(nbd::kOptGo, nbd::encode_info_request({name, {}}));
        if (auto st = write_full(c.fd_.get(), go); !st) return st.error();
        for (int i = 0; i < 8; ++i) {
            std::uint8_t hdr[nbd::kOptionReplyHeaderSize];
            if (auto st = read_full(c.fd_.get(), hdr); !st) return st.error();
            auto h = nbd::decode_option_reply_header(hdr);
            if (!h) return h.error();
            std::vector<std::uint8_t> data(h->length);
            if (auto st = read_full(c.fd_.get(), data); !st) return st.error();
            if (h->type == nbd::kRepAck) return c;
            if (h->type == nbd::kRepInfo && data.size() == 12 && data[1] == nbd::kInfoExport) {
                c.size_ = 0;
                for (int k = 2; k < 10; ++k) c.size_ = (c.size_ << 8) | data[k];
            }
            if (h->type & 0x80000000u) return Error{EPROTO, "NBD_OPT_GO refused"};
        }
        return Error{EPROTO, "no ACK to NBD_OPT_GO"};
    }

    std::uint64_t size() const { return size_; }
    int fd() const { return fd_.get(); }

    // Sends every write, then collects every reply: the writes are in flight
    // together, as a real client's queue would have them.
    Result<std::vector<std::uint32_t>> write_batch(
        const std::vector<std::pair<std::uint64_t, std::vector<std::uint8_t>>>& writes, bool fua = false) {
        for (std::size_t i = 0; i < writes.size(); ++i) {
            nbd::Request r{static_cast<std::uint16_t>(fua ? nbd::kCmdFlagFua : 0), nbd::CommandType::Write, i,
                           writes[i].first, static_cast<std::uint32_t>(writes[i].second.size())};
            auto h = nbd::encode_request(r);
            if (auto st = write_full(fd_.get(), h); !st) return st.error();
            if (auto st = write_full(fd_.get(), writes[i].second); !st) return st.error();
        }
        std::vector<std::uint32_t> errors(writes.size(), ~0u);
        for (std::size_t i = 0; i < writes.size(); ++i) {
            std::uint8_t rep[nbd::kSimpleReplySize];
            if (auto st = read_full(fd_.get(), rep); !st) return st.error();
            std::uint64_t handle = 0;
            for (int k = 8; k < 16; ++k) handle = (handle << 8) | rep[k];
            std::uint32_t err = (std::uint32_t(rep[4]) << 24) | (rep[5] << 16) | (rep[6] << 8) | rep[7];
            if (handle >= writes.size()) return Error{EPROTO, "reply for an unknown handle"};
            errors[handle] = err;
        }
        return errors;
    }

    // As write_batch, for a server that may die mid-batch: the writes it
    // never answered are ~0u, and a broken connection is not an error.
    std::vector<std::uint32_t> write_batch_until_gone(
        const std::vector<std::pair<std::uint64_t, std::vector<std::uint8_t>>>& writes) {
        std::vector<std::uint32_t> errors(writes.size(), ~0u);
        for (std::size_t i = 0; i < writes.size(); ++i) {
            nbd::Request r{0, nbd::CommandType::Write, i, writes[i].first,
                           static_cast<std::uint32_t>(writes[i].second.size())};
            auto h = nbd::encode_request(r);
            if (!write_full(fd_.get(), h) || !write_full(fd_.get(), writes[i].second)) break;
        }
        for (std::size_t i = 0; i < writes.size(); ++i) {
            std::uint8_t rep[nbd::kSimpleReplySize];
            if (!read_full(fd_.get(), rep)) break;
            std::uint64_t handle = 0;
            for (int k = 8; k < 16; ++k) handle = (handle << 8) | rep[k];
            if (handle >= writes.size()) break;
            errors[handle] = (std::uint32_t(rep[4]) << 24) | (rep[5] << 16) | (rep[6] << 8) | rep[7];
        }
        return errors;
    }

    Result<std::uint32_t> simple(nbd::CommandType type, std::uint64_t offset, std::uint32_t length,
                                 std::vector<std::uint8_t>* read_into = nullptr) {
        auto h = nbd::encode_request({0, type, 77, offset, length});
        if (auto st = write_full(fd_.get(), h); !st) return st.error();
        std::uint8_t rep[nbd::kSimpleReplySize];
        if (auto st = read_full(fd_.get(), rep); !st) return st.error();
        std::uint32_t err = (std::uint32_t(rep[4]) << 24) | (rep[5] << 16) | (rep[6] << 8) | rep[7];
        if (type == nbd::CommandType::Read && err == 0 && read_into) {
            read_into->resize(length);
            if (auto st = read_full(fd_.get(), *read_into); !st) return st.error();
        }
        return err;
    }

    void disconnect() {
        auto h = nbd::encode_request({0, nbd::CommandType::Disconnect, 0, 0, 0});
        (void)write_full(fd_.get(), h);
        fd_.reset();
    }

private:
    UniqueFd fd_;
    std::uint64_t size_ = 0;
};

class Cluster {
public:
    Cluster() {
        char tmpl[] = "/tmp/sanrep-host-XXXXXX";
        dir = ::mkdtemp(tmpl);
    }
    ~Cluster() {
        for (auto& [name, pid] : pids_) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
        std::error_code ec;
        // A failure on a CI machine is only diagnosable from the daemons'
        // own words: print the end of each log.
        if (current_test_failed()) {
            for (const auto& entry : fs::directory_iterator(dir, ec)) {
                if (entry.path().extension() != ".log") continue;
                std::fprintf(stderr, "--- the end of %s ---\n%s\n", entry.path().filename().c_str(),
                             tail(read_file(entry.path()), 80).c_str());
            }
        }
        if (std::getenv("SANREP_KEEP_DIR")) {  // debugging: keep the logs and images
            std::fprintf(stderr, "kept %s\n", dir.c_str());
            return;
        }
        fs::remove_all(dir, ec);
    }
    Cluster(const Cluster&) = delete;
    Cluster& operator=(const Cluster&) = delete;

    fs::path dir;

    // Starts sanrepd with `args` (or, with `raw`, the command `args` whose
    // process becomes sanrepd, like `ip netns exec NS sanrepd ...`); stderr
    // goes to DIR/NAME.log.
    void start(const std::string& name, std::vector<std::string> args, bool raw = false) {
        if (!raw) args.insert(args.begin(), SANREPD_PATH);
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        auto log = (dir / (name + ".log")).string();
        pid_t pid = ::fork();
        if (pid == 0) {
            int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
            if (fd >= 0) {
                ::dup2(fd, 2);
                ::close(fd);
            }
            ::execvp(argv[0], argv.data());
            ::_exit(127);
        }
        pids_[name] = pid;
    }

    // SIGTERM (clean) or SIGKILL (crash), then reap; bounded by the kill.
    // Returns the exit code, 128+N for death by signal N: a clean stop must
    // be 0, which also catches sanitizer reports (they make the exit non-zero).
    int stop(const std::string& name, int sig = SIGTERM) {
        auto it = pids_.find(name);
        if (it == pids_.end()) return -1;
        ::kill(it->second, sig);
        int status = 0;
        for (int i = 0; i < 100; ++i) {  // 10 s, then force
            if (::waitpid(it->second, &status, WNOHANG) == it->second) {
                pids_.erase(it);
                return decode(status, name);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        ::kill(it->second, SIGKILL);
        ::waitpid(it->second, &status, 0);
        pids_.erase(it);
        return decode(status, name);
    }

    std::string path(const std::string& file) const { return (dir / file).string(); }

    // CPU time (user + system, in clock ticks) the daemon has used so far.
    long cpu_ticks(const std::string& name) const {
        auto it = pids_.find(name);
        if (it == pids_.end()) return -1;
        auto stat = read_file("/proc/" + std::to_string(it->second) + "/stat");
        std::istringstream in(stat.substr(stat.rfind(')') + 2));
        std::string field;
        long utime = 0, stime = 0;
        for (int i = 3; i <= 15 && in >> field; ++i) {
            if (i == 14) utime = std::stol(field);
            if (i == 15) stime = std::stol(field);
        }
        return utime + stime;
    }

    // Sends a signal without waiting (SIGSTOP / SIGCONT to freeze a peer).
    void signal(const std::string& name, int sig) {
        if (auto it = pids_.find(name); it != pids_.end()) ::kill(it->second, sig);
    }

    nlohmann::json status(const std::string& name) const { return request(name, {{"command", "status"}}); }

    nlohmann::json request(const std::string& name, const nlohmann::json& request) const {
        auto fd = unix_connect(path(name + ".ctl"));
        if (!fd) return {};
        std::string req = request.dump() + "\n";
        if (!write_full(fd->get(), {reinterpret_cast<const std::uint8_t*>(req.data()), req.size()})) return {};
        set_recv_timeout(fd->get(), 2000);
        std::string out;
        char buf[4096];
        for (int i = 0; i < 64; ++i) {
            ssize_t n = ::recv(fd->get(), buf, sizeof buf, 0);
            if (n <= 0) break;
            out.append(buf, static_cast<std::size_t>(n));
        }
        return nlohmann::json::parse(out, nullptr, false);
    }

    std::string peer_state(const std::string& name) const {
        auto j = status(name);
        if (j.is_discarded() || !j.contains("peer")) return "";
        return j["peer"].value("state", "");
    }

    // Polls until `name`'s peer state is `want`; false after `seconds`.
    bool wait_state(const std::string& name, const std::string& want, int seconds = 20) const {
        for (int i = 0; i < seconds * 20; ++i) {
            if (peer_state(name) == want) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        return false;
    }

    bool wait_file(const std::string& file, int seconds = 10) const {
        for (int i = 0; i < seconds * 20; ++i) {
            if (fs::exists(path(file))) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        return false;
    }

    // The usual pair: secondary "b" listening on `port`, then primary "a"
    // shipping volume "vol" to it (the primary must find the listener).
    void start_pair(int port, const std::string& size, std::vector<std::string> secondary_extra = {},
                    std::vector<std::string> primary_extra = {}) {
        start_secondary("b", "vol", port, size, std::move(secondary_extra));
        start_primary("a", "vol", port, size, std::move(primary_extra));
    }

    // start_pair, then true once the primary is in sync (its blank peer got
    // the full sync).
    bool start_synced_pair(int port, const std::string& size, std::vector<std::string> secondary_extra = {},
                           std::vector<std::string> primary_extra = {}) {
        start_pair(port, size, std::move(secondary_extra), std::move(primary_extra));
        return wait_state("a", "in-sync");
    }

    void start_secondary(const std::string& name, const std::string& volume, int port, const std::string& size,
                         std::vector<std::string> extra = {}) {
        std::vector<std::string> a = {"--volume",  volume,
                                      "--role",    "secondary",
                                      "--replica", path(name + ".img"),
                                      "--size",    size,
                                      "--listen",  "127.0.0.1:" + std::to_string(port),
                                      "--control", path(name + ".ctl"),
                                      "--threads", "4"};
        a.insert(a.end(), extra.begin(), extra.end());
        start(name, a);
        wait_file(name + ".ctl");
    }
    void start_primary(const std::string& name, const std::string& volume, int peer_port, const std::string& size,
                       std::vector<std::string> extra = {}) {
        std::vector<std::string> a = {"--volume",         volume,
                                      "--role",           "primary",
                                      "--replica",        path(name + ".img"),
                                      "--size",           size,
                                      "--nbd-socket",     path(name + ".nbd"),
                                      "--control",        path(name + ".ctl"),
                                      "--threads",        "4",
                                      "--ack-timeout-ms", "3000"};
        if (peer_port) {
            a.push_back("--peer");
            a.push_back("127.0.0.1:" + std::to_string(peer_port));
        }
        a.insert(a.end(), extra.begin(), extra.end());
        start(name, a);
        wait_file(name + ".nbd");
    }

    // The names of a running daemon's threads (/proc/PID/task/*/comm).
    std::set<std::string> thread_names(const std::string& name) const {
        std::set<std::string> names;
        auto it = pids_.find(name);
        if (it == pids_.end()) return names;
        std::error_code ec;
        for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(it->second) + "/task", ec)) {
            auto comm = read_file(task.path() / "comm");
            if (!comm.empty() && comm.back() == '\n') comm.pop_back();
            names.insert(comm);
        }
        return names;
    }

private:
    static bool current_test_failed() {
        namespace ut = boost::unit_test;
        return !ut::results_collector.results(ut::framework::current_test_case().p_id).passed();
    }
    static std::string tail(const std::string& text, std::size_t lines) {
        std::size_t pos = text.size();
        while (lines-- > 0 && pos > 0) {
            pos = text.rfind('\n', pos - 1);
            if (pos == std::string::npos) return text;
        }
        return text.substr(pos);
    }
    int decode(int status, const std::string& name) const {
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (code != 0 && code != 128 + SIGKILL)
            std::fprintf(stderr, "%s exited %d; its log:\n%s\n", name.c_str(), code,
                         read_file(dir / (name + ".log")).c_str());
        return code;
    }
    std::map<std::string, pid_t> pids_;
};

// What the client saw acknowledged: each write's range and content hash, and
// the expected volume image those writes add up to.
struct AckedLog {
    explicit AckedLog(std::uint64_t size) : model(size, 0) {}
    struct Entry {
        std::uint64_t offset;
        std::uint64_t length;
        std::size_t hash;
        bool acked = true;  // false: sent, never answered; it may or may not have landed
    };
    std::vector<Entry> entries;
    std::vector<std::uint8_t> model;

    void acked(std::uint64_t offset, const std::vector<std::uint8_t>& data) {
        entries.push_back({offset, data.size(),
                           std::hash<std::string_view>{}({reinterpret_cast<const char*>(data.data()), data.size()})});
        std::copy(data.begin(), data.end(), model.begin() + static_cast<std::ptrdiff_t>(offset));
    }

    // A write the server died before answering: not checked itself, but it
    // may have overwritten the earlier writes it overlaps.
    void unanswered(std::uint64_t offset, std::uint64_t length) { entries.push_back({offset, length, 0, false}); }

    // The acked writes no later write overlapped must be there byte for byte.
    std::size_t lost_in(const std::string& image) const {
        std::size_t lost = 0;
        for (std::size_t i = 0; i < entries.size(); ++i) {
            const auto& e = entries[i];
            if (!e.acked) continue;
            bool overwritten = false;
            for (std::size_t j = i + 1; j < entries.size() && !overwritten; ++j)
                overwritten =
                    entries[j].offset < e.offset + e.length && e.offset < entries[j].offset + entries[j].length;
            if (overwritten) continue;
            if (image.size() < e.offset + e.length ||
                std::hash<std::string_view>{}(std::string_view(image).substr(e.offset, e.length)) != e.hash)
                ++lost;
        }
        return lost;
    }
};

// How a replication test ends: both daemons stopped cleanly, no acknowledged
// write missing from either replica, the replicas byte-identical and, when
// every write of the test was logged, equal to the log's model.
// Stages what a power loss can leave on a replica: the byte at `offset`
// differs from what was written there.
inline void flip_byte(const std::string& image, std::uint64_t offset) {
    std::fstream f(image, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    char was = 0;
    f.get(was);
    f.seekp(static_cast<std::streamoff>(offset));
    f.put(static_cast<char>(was ^ 0xff));
}

inline void stop_and_expect_replicas_agree(Cluster& k, const AckedLog& log, bool every_write_logged = true) {
    BOOST_TEST(k.stop("a") == 0);
    BOOST_TEST(k.stop("b") == 0);
    const auto a = read_file(k.path("a.img"));
    const auto b = read_file(k.path("b.img"));
    BOOST_TEST(log.lost_in(a) == 0u);
    BOOST_TEST(log.lost_in(b) == 0u);
    BOOST_TEST((a == b));
    if (every_write_logged) BOOST_TEST((a == std::string(log.model.begin(), log.model.end())));
}

// Random writes: sizes of 4 KiB..128 KiB at 4 KiB-aligned offsets, some
// unaligned, overlapping by chance.
inline std::vector<std::pair<std::uint64_t, std::vector<std::uint8_t>>> random_writes(std::mt19937_64& rng,
                                                                                      std::uint64_t size, int n) {
    std::vector<std::pair<std::uint64_t, std::vector<std::uint8_t>>> out;
    for (int i = 0; i < n; ++i) {
        std::uint64_t len = 4096 * (1 + rng() % 32);
        if (rng() % 8 == 0) len -= 512 * (rng() % 7 + 1);  // unaligned tail: the buffered path
        std::uint64_t off = (rng() % ((size - len) / 512)) * 512;
        std::vector<std::uint8_t> data(len);
        for (auto& b : data) b = static_cast<std::uint8_t>(rng());
        out.emplace_back(off, std::move(data));
    }
    return out;
}

}  // namespace sanrep_test
