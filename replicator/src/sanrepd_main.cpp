// sanrepd: the user-space block replicator (see docs/replicator.md). This file
// only turns flags and the config file into the objects of replicator_core,
// one set per volume (each with its own worker pool; the peer listeners are
// shared), and runs them until SIGTERM.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "sanagent/replicator/control.h"
#include "sanagent/replicator/daemon_options.h"
#include "sanagent/replicator/metadata.h"
#include "sanagent/replicator/nbd_handshake.h"
#include "sanagent/replicator/nbd_server.h"
#include "sanagent/replicator/peer_auth.h"
#include "sanagent/replicator/peer_link.h"
#include "sanagent/replicator/peer_listener.h"
#include "sanagent/replicator/peer_target.h"
#include "sanagent/replicator/replica.h"
#include "sanagent/replicator/standalone.h"
#include "sanagent/replicator/thread_name.h"
#include "sanagent/replicator/volume.h"
#include "sanagent/replicator/worker_pool.h"

using namespace sanagent;
using namespace sanagent::replicator;

namespace {

using Flags = DaemonOptions;

void usage() {
    std::fputs(
        "usage: sanrepd --volume NAME --replica PATH --role primary|secondary [options]\n"
        "       sanrepd --config FILE [--volume NAME] [options]\n"
        "  --config FILE         read [sanrepd] and [volume.NAME] from this TOML file; flags override it.\n"
        "                        Without --volume: serve every volume of the file (then only --node,\n"
        "                        --psk-file and --threads may be given as flags)\n"
        "  --meta PATH           metadata file (default REPLICA.meta; created on first start)\n"
        "  --size BYTES[K|M|G]   create or extend a file replica to this size (sparse)\n"
        "  --preallocate         allocate the whole file instead of sparse\n"
        "  --granularity BYTES   dirty-bitmap granularity for a new metadata file: a power of two,\n"
        "                        4K to 1M (default 64K)\n"
        "  --no-direct           buffered I/O instead of O_DIRECT\n"
        "primary:\n"
        "  --nbd-socket PATH     serve NBD on this UNIX socket (default /run/sanrepd/NAME.nbd)\n"
        "  --nbd-tcp HOST:PORT   also serve NBD on TCP (plain, with a warning, unless TLS is given)\n"
        "  --nbd-tls-psk FILE    NBD on TCP requires TLS with these keys (psktool's IDENTITY:HEXKEY; 0600)\n"
        "  --nbd-tls-dir DIR     NBD on TCP requires TLS with DIR/server-cert.pem, server-key.pem\n"
        "                        (0600) and, if there, DIR/ca-cert.pem (clients need a certificate from it)\n"
        "  --peer HOST:PORT      the secondary replica; without it the volume is standalone\n"
        "  --ack-timeout-ms N    drop a peer that has not acked for N ms (default 5000)\n"
        "  --activity-retire-ms N  clear the activity log of an idle volume every N ms (default 1000)\n"
        "  --force-primary       serve even though this replica is marked inconsistent\n"
        "  --peer-mode sync|async  async: acknowledge after the local write, ship with bounded lag\n"
        "  --max-lag BYTES[K|M|G]  async: lag past which the peer falls back to the bitmap (default 64M)\n"
        "  --verify-chunk BYTES  online verify: bytes per checksum (default 1M)\n"
        "secondary:\n"
        "  --listen HOST:PORT    where the primary connects\n"
        "both:\n"
        "  --control PATH        JSON control socket, 0600 (default /run/sanrepd/NAME.ctl)\n"
        "  --node NAME           this node's name (default: the host name)\n"
        "  --psk-file PATH       the peers' pre-shared key (root-owned, 0600); without it peers are not authenticated\n"
        "  --threads N           I/O worker threads per volume (default 16)\n",
        stderr);
}

std::string hex(std::uint64_t v) {
    char b[17];
    std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
    return b;
}

int fail(const std::string& what) {
    std::fprintf(stderr, "sanrepd: %s\n", what.c_str());
    return 1;
}

// A whole decimal number in [lo, hi], as the file's keys allow.
template <typename T>
bool parse_bounded(const std::string& text, long long lo, long long hi, T& out) {
    long long v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size() || v < lo || v > hi) return false;
    out = static_cast<T>(v);
    return true;
}

Result<std::unique_ptr<MetadataFile>> open_or_create_meta(const Flags& f, std::uint64_t size) {
    struct stat st {};
    if (::stat(f.meta.c_str(), &st) == 0) {
        auto m = MetadataFile::open(f.meta);
        if (m && (*m)->get().size != size)
            return Error{EINVAL, "metadata " + f.meta + " is for " + std::to_string((*m)->get().size) +
                                     " bytes, the replica has " + std::to_string(size)};
        return m;
    }
    Metadata m;
    m.size = size;
    m.granularity = static_cast<std::uint32_t>(f.granularity);
    if (f.role == "primary") {
        // A new volume: its data is whatever the replica holds, generation 1.
        m.volume_id = new_volume_id();
        m.gens.current = new_generation();
        m.flags = kMetaFlagConsistent;
    }  // a new secondary is blank: no id, generation 0, inconsistent until synced
    return MetadataFile::create(f.meta, m);
}

// Flags over `f`. Returns -1 to go on, else the exit code. `per_volume` is
// set when a flag that configures one volume was given.
int apply_flags(int argc, char** argv, Flags& f, bool& per_volume) {
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "sanrepd: %s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        bool daemon_wide = a == "--config" || a == "--node" || a == "--psk-file" || a == "--threads";
        if (!daemon_wide && a != "--volume") per_volume = true;
        if (a == "--version") {
            std::puts("sanrepd " SANAGENT_VERSION);
            return 0;
        } else if (a == "--config")
            (void)value();  // read in main
        else if (a == "--volume")
            f.volume = value();
        else if (a == "--replica")
            f.replica = value();
        else if (a == "--meta")
            f.meta = value();
        else if (a == "--role")
            f.role = value();
        else if (a == "--size") {
            if (!parse_size(value(), f.size)) {
                usage();
                return 2;
            }
        } else if (a == "--granularity") {
            if (!parse_size(value(), f.granularity)) {
                usage();
                return 2;
            }
        } else if (a == "--preallocate")
            f.preallocate = true;
        else if (a == "--no-direct")
            f.direct = false;
        else if (a == "--force-primary")
            f.force_primary = true;
        else if (a == "--nbd-socket")
            f.nbd_socket = value();
        else if (a == "--nbd-tcp")
            f.nbd_tcp = value();
        else if (a == "--nbd-tls-psk")
            f.nbd_tls_psk = value();
        else if (a == "--nbd-tls-dir")
            f.nbd_tls_dir = value();
        else if (a == "--peer")
            f.peer = value();
        else if (a == "--listen")
            f.listen = value();
        else if (a == "--control")
            f.control = value();
        else if (a == "--ack-timeout-ms") {
            if (!parse_bounded(value(), 100, 600000, f.ack_timeout_ms))
                return fail("--ack-timeout-ms is a number of milliseconds, 100..600000");
        } else if (a == "--activity-retire-ms") {
            if (!parse_bounded(value(), 10, 3600000, f.retire_ms))
                return fail("--activity-retire-ms is a number of milliseconds, 10..3600000");
        }
        else if (a == "--node")
            f.node = value();
        else if (a == "--psk-file")
            f.psk_file = value();
        else if (a == "--peer-mode") {
            auto m = value();
            if (m != "sync" && m != "async") return fail("--peer-mode is sync or async, not " + m);
            f.async = m == "async";
        } else if (a == "--max-lag") {
            if (!parse_size(value(), f.max_lag) || f.max_lag == 0) return fail("--max-lag needs a size like 64M");
        } else if (a == "--verify-chunk") {
            if (!parse_size(value(), f.verify_chunk) || f.verify_chunk < 4096 || f.verify_chunk > (32u << 20))
                return fail("--verify-chunk is 4K..32M");
        } else if (a == "--threads") {
            if (!parse_bounded(value(), 1, 256, f.threads)) return fail("--threads is 1..256");
        } else if (a == "-h" || a == "--help") {
            usage();
            return 0;
        } else {
            usage();
            return 2;
        }
    }
    return -1;
}

// Everything one volume runs on this node. Members are destroyed in reverse:
// the control socket and servers before the volume they point into. The
// role's parts (link or standalone tracking and NBD server, or target) come
// and go with a promotion or demotion; the rest stays.
struct Served {
    // Held by whoever reads or changes the role's parts below: its control
    // thread (each request), and the main thread starting, reloading or
    // stopping it.
    std::mutex mu;
    bool gone = false;  // stopped by a reload; its control thread answers so until it is joined
    Flags f;            // as configured (the file and flags); f.role is the configured role
    std::string role;   // the role it runs in now: f.role, or what sanctl promote / demote made it
    // Per volume, and declared first so it goes last: its threads block in
    // this volume's disk and peer socket, and a slow disk or peer of one
    // volume must not stall the others' secondaries and resyncs (with a
    // shared pool, two nodes each primary for one volume could wait on each
    // other's full sockets until the ack timeout).
    std::unique_ptr<WorkerPool> pool;
    std::unique_ptr<MetadataFile> meta;
    std::unique_ptr<Volume> volume;
    std::unique_ptr<PeerLink> link;
    std::unique_ptr<Standalone> standalone;
    std::unique_ptr<PeerTarget> target;
    std::unique_ptr<NbdServer> server;
    std::unique_ptr<ControlServer> control;
    std::thread nbd_thread;
    Status nbd_result;
};

nlohmann::json status_json(Served& v) {
    const Flags& f = v.f;
    auto m = v.meta->get();
    nlohmann::json j;
    j["volume"] = f.volume;
    j["node"] = f.node;
    j["role"] = v.role;
    j["configured_role"] = f.role;  // differs after sanctl promote / demote, until a restart
    j["replica"] = {{"path", f.replica},
                    {"size", v.volume->size()},
                    {"direct_io", v.volume->replica().direct()},
                    {"state", v.volume->failed() ? "failed"
                              : m.consistent()   ? "up-to-date"
                                                 : "inconsistent"}};
    if (v.volume->failed()) j["replica"]["failure"] = v.volume->failure();
    j["generations"] = {{"current", hex(m.gens.current)},
                        {"bitmap", hex(m.gens.bitmap)},
                        {"history", {hex(m.gens.history[0]), hex(m.gens.history[1])}}};
    j["dirty_bytes"] = std::min<std::uint64_t>(v.volume->size(), v.meta->dirty_bits() * m.granularity);
    if (v.link) {
        auto s = v.link->status();
        j["peer"] = {{"address", f.peer},
                     {"state", to_string(s.state)},
                     {"detail", s.detail},
                     {"mode", f.async ? "async" : "sync"},
                     {"resync",
                      {{"regions_done", s.resync_done},
                       {"regions_total", s.resync_total},
                       {"bytes_sent", s.resync_bytes},
                       {"elapsed_ms", s.resync_ms},
                       {"rate_bytes_per_s", s.resync_ms ? s.resync_bytes * 1000 / s.resync_ms : 0}}}};
        if (f.async) {
            j["peer"]["lag_bytes"] = s.lag_bytes;
            j["peer"]["lag_ops"] = s.lag_ops;
            j["peer"]["max_lag"] = f.max_lag;
        }
        auto vs = v.link->verify_status();
        nlohmann::json ranges = nlohmann::json::array();
        for (auto r : vs.mismatches) ranges.push_back({{"offset", r.offset}, {"length", r.length}});
        j["verify"] = {{"state", vs.state},           {"detail", vs.detail},
                       {"repair", vs.repair},         {"total_bytes", vs.total_bytes},
                       {"done_bytes", vs.done_bytes}, {"mismatched_bytes", vs.mismatched_bytes},
                       {"mismatches", ranges}};
    } else if (v.target) {
        auto s = v.target->status();
        j["peer"] = {{"listen", f.listen}, {"state", s.state}, {"detail", s.detail}, {"peer_node", s.peer_node}};
    } else {
        j["peer"] = {{"state", "standalone"}};
    }
    if (v.server) {
        auto tls = v.server->tls_credentials();
        j["nbd"] = {{"socket", f.nbd_socket},
                    {"tcp", f.nbd_tcp},
                    {"tls", f.nbd_tcp.empty() ? ""
                            : tls             ? tls->kind()
                                              : "off"},
                    {"clients", v.server->active_connections()}};
    }
    const auto& c = v.volume->counters();
    j["io"] = {{"reads", c.reads.load()},
               {"writes", c.writes.load()},
               {"flushes", c.flushes.load()},
               {"trims", c.trims.load()},
               {"zeroes", c.zeroes.load()},
               {"bytes_read", c.bytes_read.load()},
               {"bytes_written", c.bytes_written.load()},
               {"errors", c.errors.load()}};
    auto latency = [](const LatencyHistogram& h) {
        auto s = h.summary();
        return nlohmann::json{{"count", s.count}, {"mean", s.mean_us}, {"p50", s.p50_us}, {"p99", s.p99_us}};
    };
    j["io"]["latency_us"] = {
        {"read", latency(c.read_latency)}, {"write", latency(c.write_latency)}, {"flush", latency(c.flush_latency)}};
    return j;
}

// One line of JSON for the control socket. A string that is not UTF-8 (a
// path, or an error quoting one) gets U+FFFD instead of making dump() throw.
std::string to_line(const nlohmann::json& j) {
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string error_json(const std::string& message) {
    return to_line(nlohmann::json{{"error", message}});
}

// The commands that only read or touch one volume's own objects; promote
// and demote are the Node's (they rebuild the volume's role).
std::string control_reply(Served& v, const nlohmann::json& req, const std::string& command) {
    const Flags& f = v.f;
    MetadataFile& md = *v.meta;
    if (command == "status") return to_line(status_json(v));
    if (command == "verify") {
        if (!v.link) return error_json("verify runs on the primary of a volume with a peer");
        bool repair = req.contains("repair") && req["repair"].is_boolean() && req["repair"].get<bool>();
        if (auto st = v.link->start_verify(repair); !st) return error_json(st.error().message);
        return to_line(nlohmann::json{{"ok", true}, {"verify", "running"}});
    }
    if (command == "resolve") {
        // The losing side discards its generations and comes back blank:
        // the primary then gives it a full sync. Only a secondary that
        // refused its primary may do that, only for `keep` naming its
        // peer exactly (a typo discards nothing), and only with an
        // explicit destroy flag (sanctl --yes-destroy-data).
        std::string keep = req.contains("keep") && req["keep"].is_string() ? req["keep"].get<std::string>() : "";
        bool destroy = req.contains("yes_destroy_data") && req["yes_destroy_data"].is_boolean() &&
                       req["yes_destroy_data"].get<bool>();
        if (keep.empty()) return error_json("resolve needs \"keep\": the node whose data survives");
        if (keep == f.node)
            return nlohmann::json{{"ok", true},
                                  {"result", "kept"},
                                  {"detail", "this node's replica is kept; run the same command on the other node"}}
                .dump();
        if (!v.target)
            return error_json("this node (" + f.node + ") is primary: demote it first (sanctl replica demote " +
                              f.volume + ") to discard its data");
        auto ts = v.target->status();
        if (ts.peer_node.empty())
            return error_json("'" + keep + "' is not this node (" + f.node +
                              ") and the peer's name is not known yet (no primary has said HELLO): nothing "
                              "discarded");
        if (keep != ts.peer_node)
            return error_json("unknown node '" + keep + "': this node is " + f.node + ", its peer is " + ts.peer_node +
                              "; nothing discarded");
        if (ts.state != "split-brain" && ts.state != "peer-newer" && ts.state != "unrelated")
            return error_json("nothing to resolve: the peer state is " + ts.state);
        if (!destroy)
            return error_json("keeping " + keep + " discards this node's (" + f.node + ") replica of " + f.volume +
                              " (state " + ts.state +
                              ") and overwrites it with a full sync; repeat with "
                              "--yes-destroy-data to do that");
        auto st = md.update([](Metadata& next) {
            next.volume_id = {};
            next.gens = {};
            next.flags &= ~kMetaFlagConsistent;
        });
        if (st) {
            std::uint64_t from = 0;
            while (auto bit = md.next_dirty(from)) {
                md.clear_bit(*bit);
                from = *bit + 1;
            }
            st = md.persist_bitmap();
        }
        if (!st) return error_json(st.error().message);
        std::fprintf(stderr, "sanrepd: %s: resolve: discarded this replica's generations (kept %s): full sync next\n",
                     f.volume.c_str(), keep.c_str());
        return nlohmann::json{{"ok", true},
                              {"result", "discarded"},
                              {"detail", "this replica is blank now; the primary gives it a full sync"}}
            .dump();
    }
    return error_json("unknown request: the commands are status, verify, resolve, promote, demote");
}

// Opens one volume's replica and metadata and starts its control socket,
// whose requests go to `handle`; no role runs yet (Node::add starts the
// configured one).
Result<std::unique_ptr<Served>> open_volume(const Flags& f, unsigned threads,
                                            std::function<std::string(Served&, const std::string&)> handle) {
    auto v = std::make_unique<Served>();
    v->f = f;
    v->pool = std::make_unique<WorkerPool>(threads);
    auto replica = Replica::open({f.replica, f.size, f.preallocate, f.direct});
    if (!replica) return replica.error();
    auto meta = open_or_create_meta(f, replica->size());
    if (!meta) return meta.error();
    v->meta = std::move(*meta);
    v->volume = std::make_unique<Volume>(std::move(*replica), *v->pool);
    // The control thread may use the Served it belongs to without further
    // care: a Served is freed only after its control server was stopped.
    Served* raw = v.get();
    v->control = std::make_unique<ControlServer>(
        f.control, [raw, handle = std::move(handle)](const std::string& request) { return handle(*raw, request); });
    if (auto st = v->control->start(); !st) return st.error();
    return v;
}

// Stops what the volume's role runs, and its control socket unless told
// not to. Bounded: each part ends once its sockets fail.
void stop_volume(Served& v, bool control = true) {
    if (v.server) v.server->stop();
    if (v.nbd_thread.joinable()) v.nbd_thread.join();
    // The NBD connections end before the link does (each answers what it
    // has in flight first): the link's final flush then covers every write,
    // and none arrives at a link that is stopping.
    v.server.reset();
    if (v.link) v.link->stop();
    if (v.target) v.target->stop();
    if (control && v.control) v.control->stop();
}

// Whether two volumes would use the same file or socket: the check
// load_node_config() makes within one file, made here between a volume a
// reload adds and one still running. The NBD socket counts for secondaries
// too: any volume may be promoted.
std::string clash(const Flags& a, const Flags& b) {
    if (a.replica == b.replica) return "replica " + a.replica;
    if (a.meta == b.meta) return "metadata " + a.meta;
    if (a.control == b.control) return "control socket " + a.control;
    if (a.nbd_socket == b.nbd_socket) return "NBD socket " + a.nbd_socket;
    return {};
}

std::string ok_json(const std::string& result, const std::string& detail) {
    return to_line(nlohmann::json{{"ok", true}, {"result", result}, {"detail", detail}});
}

// Every volume this process serves, and the peer ports its secondaries
// share. Volumes come and go one at a time (at start, and on a reload), so
// one that fails or leaves never touches the others.
//
// Threads: only the main thread adds and removes volumes (start, reload,
// stop), so the list of volumes needs no lock. Each volume's control thread
// answers its requests, and promote / demote rebuild that volume's role:
// each Served has its own mutex, so one volume's slow demotion never holds
// up another's status. Lock order: a Served's mu, then listeners_mu_ or
// tls_mu_ (leaves). A control server is never stopped (joined) while its
// volume's mu is held: volumes leaving are parked in retired_ and the main
// thread stops and frees them in bury() once it has let go.
class Node {
public:
    Node(std::vector<std::uint8_t> psk, unsigned threads, bool single)
        : psk_(std::move(psk)), threads_(threads), single_(single) {}

    // NBD's TLS credentials of `f`, each file or directory read once. An
    // error is a configuration error: the caller refuses the volume (at
    // start, the whole daemon).
    Result<std::shared_ptr<const TlsCredentials>> tls_for(const Flags& f) {
        if (f.nbd_tcp.empty() || (f.nbd_tls_psk.empty() && f.nbd_tls_dir.empty()))
            return std::shared_ptr<const TlsCredentials>{};
        const bool psk_kind = !f.nbd_tls_psk.empty();
        const std::string key = psk_kind ? "psk:" + f.nbd_tls_psk : "dir:" + f.nbd_tls_dir;
        std::lock_guard lock(tls_mu_);
        if (auto it = tls_.find(key); it != tls_.end()) return it->second;
        auto creds = psk_kind ? TlsCredentials::load_psk(f.nbd_tls_psk) : TlsCredentials::load_x509(f.nbd_tls_dir);
        if (!creds) return creds.error().context("NBD TLS");
        tls_[key] = *creds;
        return std::shared_ptr<const TlsCredentials>(*creds);
    }

    // Opens and starts one volume in its configured role; false (logged)
    // when it cannot serve. The main thread only.
    bool add(const Flags& f) {
        auto tls = tls_for(f);
        if (!tls) return not_served(f, tls.error().message);
        auto opened =
            open_volume(f, threads_, [this](Served& v, const std::string& request) { return control(v, request); });
        if (!opened) return not_served(f, opened.error().message);
        auto v = std::move(*opened);
        Status st;
        {
            std::lock_guard lock(v->mu);  // its control socket is open already
            if (f.role == "primary") {
                auto server = bind_primary(*v, f.force_primary);
                if (server) start_primary(*v, std::move(*server));
                st = server ? Status{} : Status{server.error()};
            } else {
                auto hold = hold_listener(f.listen, true);
                if (hold) start_secondary(*v, *hold);
                st = hold ? Status{} : Status{hold.error()};
            }
            v->gone = !st;
        }
        if (!st) {
            retired_.push_back(std::move(v));
            return not_served(f, st.error().message);
        }
        served_.push_back(std::move(v));
        return true;
    }

    // Stops and frees the volumes that left; the main thread only, with no
    // volume's mu held.
    void bury() {
        for (auto& v : retired_) stop_volume(*v);
        retired_.clear();
    }

    // A volume's control request, on its control thread.
    std::string control(Served& v, const std::string& request) {
        nlohmann::json req = nlohmann::json::parse(request, nullptr, false);
        std::string command = req.is_object() && req.contains("command") && req["command"].is_string()
                                  ? req["command"].get<std::string>()
                                  : "";
        std::lock_guard lock(v.mu);
        if (v.gone) return error_json("volume " + v.f.volume + " is no longer served");
        // The control socket opens before the role starts (its path is
        // checked first): nothing to report or change until then.
        if (v.role.empty()) return error_json("volume " + v.f.volume + " is starting");
        if (command == "promote") {
            bool force = req.contains("force") && req["force"].is_boolean() && req["force"].get<bool>();
            auto r = promote(v, force);
            return r ? ok_json("primary", *r) : error_json(r.error().message);
        }
        if (command == "demote") {
            auto r = demote(v);
            return r ? ok_json("secondary", *r) : error_json(r.error().message);
        }
        return control_reply(v, req, command);
    }

    // The node's file again (SIGHUP, `systemctl reload sanrepd`): volumes
    // that are new start, volumes no longer in it stop (not one an NBD
    // client still uses: that would pull a disk from under a running host),
    // a volume whose role changed in the file is promoted or demoted, and
    // volumes whose other keys changed keep running as they were until a
    // restart. A file with an error changes nothing. Daemon-wide keys need a
    // restart. The main thread only.
    void reload(const std::string& config, int argc, char** argv, const Flags& daemon);

    // Everything, for SIGTERM: the control sockets (none can start a
    // promotion now), then no new peer connections (and every session's
    // socket shut down), then the volumes, all at once: a primary in the
    // middle of a handshake with a frozen peer takes up to its ack timeout to
    // stop, and those waits must not add up across volumes past systemd's
    // stop timeout. True when every NBD server ended cleanly.
    bool stop_all() {
        bury();
        for (auto& v : served_) v->control->stop();
        {
            std::lock_guard lock(listeners_mu_);
            for (auto& [address, entry] : listeners_) entry.listener->stop();
        }
        std::vector<std::thread> stoppers;
        for (auto& v : served_) {
            try {
                stoppers.emplace_back([&v] { stop_volume(*v); });
            } catch (const std::system_error&) {
                stop_volume(*v);  // out of threads: this one in turn
            }
        }
        for (auto& t : stoppers) t.join();
        bool ok = true;
        for (auto& v : served_) ok = ok && v->nbd_result.ok();
        return ok;
    }

    bool empty() const { return served_.empty(); }

private:
    static bool not_served(const Flags& f, const std::string& why) {
        std::fprintf(stderr, "sanrepd: volume %s not served: %s\n", f.volume.c_str(), why.c_str());
        return false;
    }

    Served* find(const std::string& volume) {
        for (auto& v : served_)
            if (v->f.volume == volume) return v.get();
        return nullptr;
    }

    // Stops one volume's role and parks it for bury() (its replica and
    // metadata stay as they are on disk). With v.mu held.
    void retire_locked(Served& v) {
        end_role(v);
        v.gone = true;
        auto it = std::find_if(served_.begin(), served_.end(), [&](auto& p) { return p.get() == &v; });
        retired_.push_back(std::move(*it));
        served_.erase(it);
        std::fprintf(stderr, "sanrepd: volume %s: no longer served\n", v.f.volume.c_str());
    }

    // The checks of a start or promotion as primary, and its NBD listeners
    // bound: what can fail does so before the volume's current role is
    // touched.
    Result<std::unique_ptr<NbdServer>> bind_primary(Served& v, bool force) {
        const Flags& f = v.f;
        if (!v.meta->get().consistent() && !force)
            return Error{EINVAL, "replica " + f.replica +
                                     " is inconsistent (a resync target that has not finished): not serving it"};
        auto tls = tls_for(f);
        if (!tls) return tls.error();
        nbd::ExportInfo exp;
        exp.name = f.volume;
        exp.size = v.volume->size();
        // FLUSH and FUA advertised: without SEND_FLUSH the kernel client assumes
        // write-through. CAN_MULTI_CONN holds: a flush syncs the whole replica and
        // every in-sync peer, covering writes completed on any connection.
        exp.transmission_flags = nbd::kFlagHasFlags | nbd::kFlagSendFlush | nbd::kFlagSendFua | nbd::kFlagSendTrim |
                                 nbd::kFlagSendWriteZeroes | nbd::kFlagCanMultiConn;
        auto server = std::make_unique<NbdServer>(exp, *v.volume);
        if (auto st = server->listen_unix(f.nbd_socket); !st) return st.error();
        if (!f.nbd_tcp.empty()) {
            if (*tls) server->require_tls(std::move(*tls));
            if (auto st = server->listen_tcp(f.nbd_tcp); !st) return st.error();
        }
        return server;
    }

    void start_primary(Served& v, std::unique_ptr<NbdServer> server) {
        const Flags& f = v.f;
        if (!f.peer.empty()) {
            PeerLinkOptions po;
            po.address = f.peer;
            po.volume = f.volume;
            po.node = f.node;
            po.ack_timeout_ms = f.ack_timeout_ms;
            po.retire_interval_ms = f.retire_ms;
            po.async = f.async;
            po.max_lag = f.max_lag;
            po.verify_chunk = f.verify_chunk;
            po.psk = psk_;
            v.link = std::make_unique<PeerLink>(po, *v.volume, *v.meta, *v.pool);
            v.volume->set_replication(v.link.get());
            v.link->start();
        } else {
            v.standalone = std::make_unique<Standalone>(*v.meta);
            v.volume->set_replication(v.standalone.get());
        }
        v.server = std::move(server);
        v.nbd_result = {};
        Served* raw = &v;
        v.nbd_thread = std::thread([raw, single = single_] {
            name_thread("nbd-accept");
            raw->nbd_result = raw->server->run();
            if (!raw->nbd_result) {
                std::fprintf(stderr, "sanrepd: volume %s: NBD server: %s\n", raw->f.volume.c_str(),
                             raw->nbd_result.error().message.c_str());
                if (single) ::kill(::getpid(), SIGTERM);  // nothing left to serve: release the main thread
            }
        });
        v.role = "primary";
        std::fprintf(stderr, "sanrepd: volume %s primary (%llu bytes) on %s%s, NBD at %s, peer %s\n", f.volume.c_str(),
                     static_cast<unsigned long long>(v.volume->size()), f.replica.c_str(),
                     v.volume->replica().direct() ? " (O_DIRECT)" : "", f.nbd_socket.c_str(),
                     f.peer.empty() ? "none (standalone)" : f.peer.c_str());
    }

    // Keeps the listener of an address alive while a role change works
    // with it outside listeners_mu_: a listener is closed only when no
    // volume uses it and nobody holds it.
    class ListenerHold {
    public:
        ListenerHold(Node& node, std::string address, PeerListener& listener)
            : node_(&node), address_(std::move(address)), listener_(&listener) {}
        ListenerHold(ListenerHold&& o) noexcept
            : node_(std::exchange(o.node_, nullptr)), address_(std::move(o.address_)), listener_(o.listener_) {}
        ListenerHold& operator=(ListenerHold&&) = delete;
        ~ListenerHold() {
            if (node_) node_->release_hold(address_);
        }
        PeerListener& listener() const { return *listener_; }

    private:
        Node* node_;
        std::string address_;
        PeerListener* listener_;
    };

    // A hold on the listener of `address`; with `create`, bound now if no
    // secondary uses it yet. Secondaries with the same listen address share
    // one socket; the primary's first message names the volume.
    Result<ListenerHold> hold_listener(const std::string& address, bool create) {
        if (address.empty())
            return Error{EINVAL, "no listen address: a secondary needs one (listen in [volume.NAME] or [sanrepd])"};
        std::lock_guard lock(listeners_mu_);
        auto it = listeners_.find(address);
        if (it == listeners_.end()) {
            if (!create) return Error{ENOENT, "no listener on " + address};
            auto l = std::make_unique<PeerListener>(address);
            if (auto st = l->listen(); !st) return st.error();
            l->start();
            it = listeners_.emplace(address, ListenerEntry{std::move(l), 0}).first;
        }
        ++it->second.holds;
        return ListenerHold(*this, address, *it->second.listener);
    }

    void release_hold(const std::string& address) {
        std::unique_ptr<PeerListener> unused;
        {
            std::lock_guard lock(listeners_mu_);
            auto it = listeners_.find(address);
            if (it == listeners_.end()) return;
            if (--it->second.holds == 0 && it->second.listener->volumes() == 0) {
                unused = std::move(it->second.listener);
                listeners_.erase(it);
            }
        }
        // Stopped (its threads joined) outside the lock: no volume uses it.
    }

    // Takes the volume's target off its listener: no primary reaches it
    // from now on, and a session it had is ended (waiting for the session's
    // in-flight writes, outside listeners_mu_).
    void fence_target(Served& v) {
        if (auto hold = hold_listener(v.f.listen, false)) hold->listener().remove(v.f.volume);
    }

    void start_secondary(Served& v, const ListenerHold& hold, const std::string& peer_node = {}) {
        const Flags& f = v.f;
        v.target = std::make_unique<PeerTarget>(f.volume, v.volume->replica(), *v.meta, *v.pool, psk_);
        v.target->set_node(f.node);
        if (!peer_node.empty()) v.target->remember_peer_node(peer_node);
        hold.listener().add(*v.target);
        v.role = "secondary";
        std::fprintf(stderr, "sanrepd: volume %s secondary on %s, waiting for the primary on %s\n", f.volume.c_str(),
                     f.replica.c_str(), f.listen.c_str());
    }

    // Stops the role's parts; the volume, its metadata and its control
    // socket stay.
    void end_role(Served& v) {
        if (v.target) fence_target(v);  // the listener closes with it if no other volume uses it
        stop_volume(v, false);
        v.volume->set_replication(nullptr);  // nothing is in flight: the NBD server is gone
        v.server.reset();
        v.link.reset();
        v.standalone.reset();
        v.target.reset();
        v.role.clear();
    }

    // The secondary becomes primary (sanctl replica promote, or the file's
    // role on a reload). Refused while a primary is connected to it (two
    // primaries would write unseen by each other), and for an inconsistent
    // replica unless forced. The target is fenced off before the checks
    // that matter, so no primary can start a resync in between. Returns
    // what happened, for the log and the caller.
    Result<std::string> promote(Served& v, bool force) {
        const std::string& name = v.f.volume;
        if (v.role == "primary") return std::string("already primary");
        // Kept until the end: the rollback below needs the listener.
        auto hold = hold_listener(v.f.listen, false);
        if (!v.target || !hold) return Error{EIO, "volume " + name + ": not promoted: it has no peer target"};
        const auto sessions = v.target->sessions_started();
        auto connected = [&] {
            return Error{EBUSY, "volume " + name + ": primary " + v.target->connected_primary() +
                                    " is connected to this secondary: demote it first (two primaries would "
                                    "each write what the other does not see; a node that died is noticed "
                                    "within about 20 s)"};
        };
        if (v.target->has_primary()) return connected();
        hold->listener().remove(name);
        auto server = [&]() -> Result<std::unique_ptr<NbdServer>> {
            if (v.target->sessions_started() != sessions)
                return Error{EBUSY, "a primary connected to it while it was being promoted: demote that one first"};
            return bind_primary(v, force);
        }();
        if (!server) {
            // Back as it was: a fresh target on the same listener.
            const auto peer_node = v.target->status().peer_node;
            v.target.reset();
            start_secondary(v, *hold, peer_node);
            return server.error().context("volume " + name + ": not promoted");
        }
        end_role(v);
        start_primary(v, std::move(*server));
        std::string detail =
            v.f.peer.empty() ? "primary, standalone (no peer configured)" : "primary, replicating to " + v.f.peer;
        std::fprintf(stderr, "sanrepd: volume %s promoted: %s%s\n", name.c_str(), detail.c_str(),
                     force ? " (forced)" : "");
        return detail;
    }

    // The primary becomes secondary: its NBD server and peer link stop (the
    // peer gets a FLUSH first, so it marks nothing), then it waits on its
    // listen address for the new primary. Refused while an NBD client is
    // connected: that would pull the disk from under a running host.
    Result<std::string> demote(Served& v) {
        const std::string& name = v.f.volume;
        if (v.role == "secondary") return std::string("already secondary");
        auto hold = hold_listener(v.f.listen, true);  // bound first: nothing changes if it cannot be
        if (!hold) return hold.error().context("volume " + name + ": not demoted");
        // Closed to new clients in the same step as the check. A client
        // that has just said goodbye (nbd-client -d, then this) may still
        // be ending: a moment for it, bounded.
        bool idle = !v.server || v.server->close_if_idle();
        for (int i = 0; !idle && i < 40; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            idle = v.server->close_if_idle();
        }
        if (!idle) {
            return Error{EBUSY, "volume " + name + ": " + std::to_string(v.server->active_connections()) +
                                    " NBD client(s) connected: disconnect them first (nbd-client -d, or stop "
                                    "what exports the device)"};
        }
        end_role(v);
        start_secondary(v, *hold);
        std::string detail = "secondary, waiting for the primary on " + v.f.listen;
        std::fprintf(stderr, "sanrepd: volume %s demoted: %s\n", name.c_str(), detail.c_str());
        return detail;
    }

    // A reload's volume already served: a changed role is applied, other
    // changes wait for a restart, rotated TLS keys take effect.
    void reload_one(Served& v, const Flags& f, const std::string& config, int& changed, int& roles_changed,
                    int& roles_refused) {
        Flags same_role = v.f;
        same_role.role = f.role;
        if (!(same_role == f)) {
            std::fprintf(stderr,
                         "sanrepd: reload: volume %s changed in %s: restart sanrepd to apply it; it keeps "
                         "running as it was\n",
                         f.volume.c_str(), config.c_str());
            ++changed;
            return;
        }
        if (f.role != v.f.role) {
            // The file's role changed: apply it (sanctl may have done so already).
            auto r = f.role == "primary" ? promote(v, f.force_primary) : demote(v);
            if (!r) {
                std::fprintf(stderr, "sanrepd: reload: %s: it stays %s\n", r.error().message.c_str(), v.role.c_str());
                ++roles_refused;
                return;
            }
            v.f.role = f.role;
            ++roles_changed;
        }
        // The same key file may hold new keys: new connections get them.
        auto now_tls = v.server ? v.server->tls_credentials() : nullptr;
        if (!now_tls) return;
        auto tls = tls_for(f);
        if (!tls)
            std::fprintf(stderr, "sanrepd: reload: volume %s: %s: it keeps the keys it has\n", f.volume.c_str(),
                         tls.error().message.c_str());
        else if (*tls && !now_tls->same_keys(**tls)) {
            v.server->require_tls(*tls);
            std::fprintf(stderr, "sanrepd: reload: volume %s: NBD TLS keys changed (%s): new connections use them\n",
                         f.volume.c_str(), (*tls)->describe().c_str());
        }
    }

    std::vector<std::uint8_t> psk_;
    unsigned threads_;
    bool single_;  // a volume given alone (--volume): its NBD server failing ends the process
    std::mutex tls_mu_;
    std::map<std::string, std::shared_ptr<const TlsCredentials>> tls_;  // under tls_mu_
    std::vector<std::unique_ptr<Served>> served_;                       // the main thread's
    std::vector<std::unique_ptr<Served>> retired_;  // the main thread's: bury() stops and frees them
    // Declared after the volumes, so destroyed first: a listener's
    // connection threads point into its volumes' targets.
    struct ListenerEntry {
        std::unique_ptr<PeerListener> listener;
        unsigned holds = 0;  // ListenerHolds alive: not closed while any is
    };
    std::mutex listeners_mu_;
    std::map<std::string, ListenerEntry> listeners_;  // under listeners_mu_
};

void Node::reload(const std::string& config, int argc, char** argv, const Flags& daemon) {
    std::fprintf(stderr, "sanrepd: reload: reading %s\n", config.c_str());
    auto all = load_node_config(config, Flags{});
    if (!all) {
        std::fprintf(stderr, "sanrepd: reload: %s: nothing changed\n", all.error().message.c_str());
        return;
    }
    std::vector<Flags> wanted;
    std::string file_node;
    for (auto& f : *all) {
        bool per_volume = false;
        (void)apply_flags(argc, argv, f, per_volume);  // the daemon-wide flags of the command line, as at start
        file_node = f.node;
        f.node = daemon.node;  // as at start: the host name when the file names none
        wanted.push_back(std::move(f));
    }
    const Flags& now = wanted.front();
    for (auto [key, changed] : {std::pair<const char*, bool>{"psk_file", now.psk_file != daemon.psk_file},
                                {"threads", now.threads != daemon.threads},
                                {"node", !file_node.empty() && file_node != daemon.node}})
        if (changed) std::fprintf(stderr, "sanrepd: reload: [sanrepd] %s changed: restart sanrepd to apply it\n", key);
    // Those leaving first, and stopped before any volume is added: their
    // files, sockets and ports are free then.
    int removed = 0, kept = 0, changed = 0, added = 0, failed = 0, roles_changed = 0, roles_refused = 0;
    std::vector<Served*> leaving;
    for (auto& v : served_)
        if (std::none_of(wanted.begin(), wanted.end(), [&](const Flags& f) { return f.volume == v->f.volume; }))
            leaving.push_back(v.get());
    for (Served* v : leaving) {
        std::unique_lock lock(v->mu);
        // Closed to new clients in the same step as the check: none can
        // come in between and be cut off.
        if (v->server && !v->server->close_if_idle()) {
            std::fprintf(stderr,
                         "sanrepd: reload: volume %s is no longer in %s but %zu NBD client(s) use it: still "
                         "serving it; reload again once they have disconnected\n",
                         v->f.volume.c_str(), config.c_str(), v->server->active_connections());
            ++kept;
            continue;
        }
        retire_locked(*v);
        ++removed;
    }
    bury();
    {
        std::lock_guard lock(tls_mu_);
        tls_.clear();  // an admin rotates keys and reloads: read every key file again
    }
    for (const auto& f : wanted) {
        if (Served* v = find(f.volume)) {
            std::lock_guard lock(v->mu);
            reload_one(*v, f, config, changed, roles_changed, roles_refused);
            continue;
        }
        std::string why;
        for (auto& v : served_)
            if (auto c = clash(f, v->f); !c.empty()) why = c + " is still volume " + v->f.volume + "'s";
        if (!why.empty()) {
            std::fprintf(stderr, "sanrepd: reload: volume %s not served: %s\n", f.volume.c_str(), why.c_str());
            ++failed;
            continue;
        }
        if (add(f))
            ++added;
        else
            ++failed;
    }
    bury();
    std::fprintf(stderr,
                 "sanrepd: reload: %d added, %d removed, %d changed (restart to apply), %d kept for their "
                 "clients, %d not served; roles: %d changed, %d refused\n",
                 added, removed, changed, kept, failed, roles_changed, roles_refused);
}

}  // namespace

int main(int argc, char** argv) {
    // The file first (--config and --volume are looked up before anything
    // else), then every flag over it.
    std::string config, only;
    for (int i = 1; i + 1 < argc; ++i) {
        std::string a = argv[i];
        if (a == "--config") config = argv[i + 1];
        if (a == "--volume") only = argv[i + 1];
    }
    std::vector<Flags> wanted;
    if (!config.empty() && only.empty()) {
        // One daemon per node: every volume of the file, validated as a whole
        // before anything is opened.
        auto all = load_node_config(config, Flags{});
        if (!all) return fail(all.error().message);
        for (auto& f : *all) {
            bool per_volume = false;
            if (int rc = apply_flags(argc, argv, f, per_volume); rc >= 0) return rc;
            if (per_volume)
                return fail(
                    "with --config and no --volume, only --node, --psk-file and --threads may be given as "
                    "flags: the file configures each volume (or add --volume NAME to serve one)");
            wanted.push_back(std::move(f));
        }
    } else {
        Flags f;
        f.volume = only;
        if (!config.empty())
            if (auto st = load_daemon_config(config, f.volume, f); !st) return fail(st.error().message);
        bool per_volume = false;
        if (int rc = apply_flags(argc, argv, f, per_volume); rc >= 0) return rc;
        if (f.volume.empty() || f.replica.empty() || (f.role != "primary" && f.role != "secondary")) {
            usage();
            return 2;
        }
        if (f.role == "secondary" && f.listen.empty()) return fail("a secondary needs --listen");
        fill_defaults(f);
        if (auto why = check_options(f); !why.empty()) return fail(why);
        wanted.push_back(std::move(f));
    }
    std::string node_name = wanted.front().node;
    if (node_name.empty()) {
        char host[256] = {};
        ::gethostname(host, sizeof host - 1);
        node_name = host;
        // It travels in HELLO, where an empty or odd name is refused.
        if (!valid_volume_name(node_name))
            return fail("node: the host name '" + node_name +
                        "' is not a usable node name: set node in [sanrepd] (or --node)");
    }
    for (auto& f : wanted) f.node = node_name;
    const Flags daemon = wanted.front();  // [sanrepd] keys and daemon-wide flags are the same for every volume

    // Signals are taken by sigwait on one thread; every other thread inherits
    // the mask and never sees them.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

    std::vector<std::uint8_t> psk;
    bool networked = false;
    for (auto& f : wanted) networked = networked || !f.peer.empty() || (f.role == "secondary" && !f.listen.empty());
    if (!daemon.psk_file.empty()) {
        auto key = load_psk(daemon.psk_file);
        if (!key) return fail(key.error().message);
        psk = std::move(*key);
    } else if (networked) {
        std::fprintf(stderr,
                     "sanrepd: WARNING: no psk_file: the peer is not authenticated; "
                     "keep the replication port on a trusted storage network\n");
    }

    const bool node_mode = !config.empty() && only.empty();
    Node node(psk, daemon.threads, !node_mode);
    // NBD's TLS keys of every volume before any volume opens: a bad key
    // file is a configuration error.
    for (auto& f : wanted)
        if (auto tls = node.tls_for(f); !tls) return fail("volume " + f.volume + ": " + tls.error().message);
    // A volume that cannot start is logged and left out; the others serve.
    for (auto& f : wanted) node.add(f);
    node.bury();
    if (node.empty()) return fail(wanted.size() == 1 ? "nothing served" : "no volume could be served");

    int sig = 0;
    for (;;) {
        sigwait(&sigs, &sig);
        if (sig != SIGHUP) break;
        if (node_mode)
            node.reload(config, argc, argv, daemon);
        else
            std::fprintf(stderr, "sanrepd: SIGHUP: only a daemon started with --config and no --volume reloads\n");
    }
    return node.stop_all() ? 0 : 1;
}
