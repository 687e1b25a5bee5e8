// sanrepd: the user-space block replicator (see docs/replicator.md). This file
// only turns flags into the objects of replicator_core and runs them.
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "sanagent/replicator/nbd_handshake.h"
#include "sanagent/replicator/nbd_server.h"
#include "sanagent/replicator/replica.h"
#include "sanagent/replicator/volume.h"
#include "sanagent/replicator/worker_pool.h"

using namespace sanagent;
using namespace sanagent::replicator;

namespace {

struct Flags {
    std::string volume;
    std::string replica;
    std::uint64_t size = 0;
    bool preallocate = false;
    bool direct = true;
    std::string nbd_socket;
    std::string nbd_tcp;
    unsigned threads = 16;
};

void usage() {
    std::fputs(
        "usage: sanrepd --volume NAME --replica PATH [options]\n"
        "  --size BYTES[K|M|G]   create or extend a file replica to this size (sparse)\n"
        "  --preallocate         allocate the whole file instead of sparse\n"
        "  --no-direct           buffered I/O instead of O_DIRECT\n"
        "  --nbd-socket PATH     serve NBD on this UNIX socket (default /run/sanrepd/NAME.nbd)\n"
        "  --nbd-tcp HOST:PORT   also serve NBD on TCP (no TLS)\n"
        "  --threads N           I/O worker threads (default 16)\n",
        stderr);
}

bool parse_size(const std::string& s, std::uint64_t& out) {
    char* end = nullptr;
    unsigned long long v = std::strtoull(s.c_str(), &end, 10);
    if (end == s.c_str()) return false;
    std::string unit(end);
    if (unit == "K") v <<= 10;
    else if (unit == "M") v <<= 20;
    else if (unit == "G") v <<= 30;
    else if (!unit.empty()) return false;
    out = v;
    return true;
}

NbdServer* g_server = nullptr;
void on_signal(int) {
    if (g_server) g_server->stop();
}

}  // namespace

int main(int argc, char** argv) {
    Flags f;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "sanrepd: %s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--version") {
            std::puts("sanrepd " SANAGENT_VERSION);
            return 0;
        } else if (a == "--volume") f.volume = value();
        else if (a == "--replica") f.replica = value();
        else if (a == "--size") {
            if (!parse_size(value(), f.size)) { usage(); return 2; }
        } else if (a == "--preallocate") f.preallocate = true;
        else if (a == "--no-direct") f.direct = false;
        else if (a == "--nbd-socket") f.nbd_socket = value();
        else if (a == "--nbd-tcp") f.nbd_tcp = value();
        else if (a == "--threads") f.threads = static_cast<unsigned>(std::stoul(value()));
        else { usage(); return 2; }
    }
    if (f.volume.empty() || f.replica.empty()) { usage(); return 2; }
    if (f.nbd_socket.empty()) f.nbd_socket = "/run/sanrepd/" + f.volume + ".nbd";

    auto replica = Replica::open({f.replica, f.size, f.preallocate, f.direct});
    if (!replica) {
        std::fprintf(stderr, "sanrepd: %s\n", replica.error().message.c_str());
        return 1;
    }
    WorkerPool pool(f.threads);
    Volume volume(std::move(*replica), pool);
    nbd::ExportInfo exp;
    exp.name = f.volume;
    exp.size = volume.size();
    exp.transmission_flags = nbd::kFlagHasFlags | nbd::kFlagSendFlush | nbd::kFlagSendFua | nbd::kFlagSendTrim |
                             nbd::kFlagSendWriteZeroes | nbd::kFlagCanMultiConn;
    NbdServer server(exp, volume);
    if (auto st = server.listen_unix(f.nbd_socket); !st) {
        std::fprintf(stderr, "sanrepd: %s\n", st.error().message.c_str());
        return 1;
    }
    if (!f.nbd_tcp.empty()) {
        if (auto st = server.listen_tcp(f.nbd_tcp); !st) {
            std::fprintf(stderr, "sanrepd: %s\n", st.error().message.c_str());
            return 1;
        }
    }
    g_server = &server;
    struct sigaction sa{};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    std::fprintf(stderr, "sanrepd: volume %s (%llu bytes) on %s%s, NBD at %s\n", f.volume.c_str(),
                 static_cast<unsigned long long>(volume.size()), f.replica.c_str(),
                 volume.replica().direct() ? " (O_DIRECT)" : "", f.nbd_socket.c_str());
    auto st = server.run();
    g_server = nullptr;
    if (!st) {
        std::fprintf(stderr, "sanrepd: %s\n", st.error().message.c_str());
        return 1;
    }
    return 0;
}
