// sanctl replica status|verify|resolve|promote|demote: the admin's (and
// later the agent's and the cluster manager's) way to drive sanrepd, through the same JSON control socket the daemon
// serves (docs/replicator.md, "Control socket").
#include "sanagent/agent/replica_commands.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>

#include "sanagent/agent/units.h"
#include "sanagent/replicator/control.h"
#include "sanagent/replicator/daemon_options.h"

namespace sanagent::agent {

namespace {

struct ReplicaOptions {
    std::vector<std::string> positional;
    std::string control;
    std::string control_dir = "/run/sanrepd";
    std::string keep;
    bool json = false;
    bool repair = false;
    bool yes_destroy_data = false;
    bool force = false;
    bool wait = true;
    int timeout_s = 3600;
};

int fail(const std::string& message) {
    std::cerr << "sanctl: " << message << "\n";
    return 1;
}

std::optional<ReplicaOptions> parse(const std::vector<std::string>& args) {
    ReplicaOptions o;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const auto& a = args[i];
        bool has_value = i + 1 < args.size();
        if (a == "--json") {
            o.json = true;
        } else if (a == "--repair") {
            o.repair = true;
        } else if (a == "--yes-destroy-data") {
            o.yes_destroy_data = true;
        } else if (a == "--force") {
            o.force = true;
        } else if (a == "--no-wait") {
            o.wait = false;
        } else if (a == "--control" && has_value) {
            o.control = args[++i];
        } else if (a == "--control-dir" && has_value) {
            o.control_dir = args[++i];
        } else if (a == "--keep" && has_value) {
            o.keep = args[++i];
        } else if (a == "--timeout" && has_value) {
            try {
                o.timeout_s = std::stoi(args[++i]);
            } catch (const std::exception&) {
                o.timeout_s = -1;
            }
            if (o.timeout_s <= 0) {
                std::cerr << "sanctl: --timeout takes seconds\n";
                return std::nullopt;
            }
        } else if (!a.empty() && a[0] == '-') {
            std::cerr << "sanctl: unknown or incomplete argument '" << a << "'\n";
            return std::nullopt;
        } else {
            o.positional.push_back(a);
        }
    }
    return o;
}

Result<nlohmann::json> ask(const std::string& socket, const nlohmann::json& request) {
    auto reply = replicator::control_request(socket, request.dump());
    if (!reply) return reply.error();
    auto j = nlohmann::json::parse(*reply, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return Error{EPROTO, "sanrepd at " + socket + " sent no JSON object"};
    if (j.contains("error")) return Error{EINVAL, "sanrepd: " + j["error"].get<std::string>()};
    return j;
}

std::string size_text(std::uint64_t bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(bytes);
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        ++u;
    }
    char b[32];
    std::snprintf(b, sizeof b, u ? "%.1f %s" : "%.0f %s", v, units[u]);
    return b;
}

void print_status(const nlohmann::json& j) {
    const auto& p = j.value("peer", nlohmann::json::object());
    std::cout << "volume " << j.value("volume", "") << " on " << j.value("node", "") << ": " << j.value("role", "")
              << ", replica " << j.value("replica", nlohmann::json::object()).value("state", "") << "\n";
    if (const auto configured = j.value("configured_role", j.value("role", "")); configured != j.value("role", ""))
        std::cout << "  role set with sanctl; the configuration says " << configured
                  << " (a restart of sanrepd goes back to it)\n";
    if (const auto r = j.value("replica", nlohmann::json::object()); r.contains("failure"))
        std::cout << "  failed: " << r.value("failure", "") << " (writes answered EIO until sanrepd restarts)\n";
    std::cout << "  peer " << p.value("address", p.value("listen", "")) << ": " << p.value("state", "");
    if (p.contains("mode")) std::cout << " (" << p.value("mode", "") << ")";
    if (!p.value("detail", "").empty()) std::cout << " - " << p.value("detail", "");
    std::cout << "\n";
    if (p.value("state", "") == "resyncing") {
        const auto resync = p.value("resync", nlohmann::json::object());
        std::uint64_t total = resync.value("regions_total", 0ull), done = resync.value("regions_done", 0ull);
        std::uint64_t rate = resync.value("rate_bytes_per_s", 0ull);
        std::cout << "  resync " << (total ? done * 100 / total : 0) << "% (" << done << "/" << total << " regions, "
                  << rate / 1000000 << " MB/s)\n";
    }
    if (p.contains("lag_bytes"))
        std::cout << "  async lag " << size_text(p.value("lag_bytes", 0ull)) << " in " << p.value("lag_ops", 0ull)
                  << " ops (max " << size_text(p.value("max_lag", 0ull)) << ")\n";
    std::cout << "  dirty " << size_text(j.value("dirty_bytes", 0ull)) << "\n";
    if (j.contains("nbd")) {
        const auto& n = j.at("nbd");
        std::cout << "  nbd " << n.value("socket", "");
        if (!n.value("tcp", "").empty()) {
            const std::string tls = n.value("tls", "");
            std::cout << ", tcp " << n.value("tcp", "")
                      << (tls == "off" ? " (no TLS)" : " (TLS " + tls + ")");
        }
        std::cout << ", " << n.value("clients", 0ull) << " client(s)\n";
    }
    if (j.contains("io")) {
        const auto& io = j.at("io");
        std::cout << "  io: " << io.value("reads", 0ull) << " reads (" << size_text(io.value("bytes_read", 0ull))
                  << "), " << io.value("writes", 0ull) << " writes (" << size_text(io.value("bytes_written", 0ull))
                  << "), " << io.value("flushes", 0ull) << " flushes, " << io.value("errors", 0ull) << " errors\n";
        if (io.contains("latency_us")) {
            std::cout << "  latency (p50/p99, µs):";
            for (const char* op : {"read", "write", "flush"}) {
                const auto& l = io["latency_us"].value(op, nlohmann::json::object());
                if (l.value("count", 0ull))
                    std::cout << " " << op << " " << l.value("p50", 0ull) << "/" << l.value("p99", 0ull);
            }
            std::cout << "\n";
        }
    }
    if (j.contains("verify") && j["verify"].value("state", "") != "never") {
        const auto& v = j["verify"];
        std::cout << "  last verify: " << v.value("state", "") << ", " << size_text(v.value("done_bytes", 0ull))
                  << " of " << size_text(v.value("total_bytes", 0ull)) << " compared, "
                  << size_text(v.value("mismatched_bytes", 0ull)) << " mismatched\n";
    }
}

int cmd_status(const ReplicaOptions& o, const std::string& socket) {
    auto j = ask(socket, {{"command", "status"}});
    if (!j) return fail(j.error().message);
    if (o.json)
        std::cout << j->dump(2) << "\n";
    else
        print_status(*j);
    return 0;
}

int cmd_status_all(const ReplicaOptions& o) {
    auto all = replica_statuses(o.control_dir);
    if (!all) return fail(all.error().message);
    if (o.json)
        std::cout << all->dump(2) << "\n";
    else if (all->empty())
        std::cout << "no sanrepd volumes (no control socket in " << o.control_dir << ")\n";
    else
        std::cout << replica_status_lines(*all);
    for (const auto& j : *all)
        if (j.contains("error")) return 1;
    return 0;
}

int cmd_verify(const ReplicaOptions& o, const std::string& volume, const std::string& socket) {
    auto started = ask(socket, {{"command", "verify"}, {"repair", o.repair}});
    if (!started) return fail(started.error().message);
    if (!o.wait) {
        std::cout << "verify of " << volume << " started; `sanctl replica status " << volume << "` shows it\n";
        return 0;
    }
    // Bounded by --timeout; the verify itself goes on in sanrepd if we give up.
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(o.timeout_s);
    nlohmann::json v;
    for (;;) {
        auto j = ask(socket, {{"command", "status"}});
        if (!j) return fail(j.error().message);
        // No verify in the answer (the volume was demoted meanwhile): not running.
        v = j->value("verify", nlohmann::json::object());
        if (v.value("state", "") != "running") break;
        if (std::chrono::steady_clock::now() > until)
            return fail("verify still running after " + std::to_string(o.timeout_s) + " s (it goes on in sanrepd)");
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    if (o.json) {
        std::cout << v.dump(2) << "\n";
    } else {
        std::cout << "verify of " << volume << ": " << v.value("state", "") << ", "
                  << size_text(v.value("done_bytes", 0ull)) << " of " << size_text(v.value("total_bytes", 0ull))
                  << " compared, " << size_text(v.value("mismatched_bytes", 0ull)) << " mismatched\n";
        for (const auto& r : v["mismatches"])
            std::cout << "  mismatch at offset " << r.value("offset", 0ull) << " length " << r.value("length", 0ull)
                      << "\n";
        if (!v.value("detail", "").empty()) std::cout << "  " << v.value("detail", "") << "\n";
    }
    // Only a verify that compared every byte may pass: one that stopped
    // early says nothing about the rest of the volume.
    const std::string state = v.value("state", "");
    const std::uint64_t done = v.value("done_bytes", 0ull), total = v.value("total_bytes", 0ull);
    if (state != "done" || done != total) {
        std::cerr << "sanctl: verify of " << volume << " " << (state == "done" ? "ended" : state) << " after comparing "
                  << size_text(done) << " of " << size_text(total) << " (" << done << " of " << total
                  << " bytes): the replicas are not verified\n";
        return 1;
    }
    return v.value("mismatched_bytes", 0ull) == 0 ? 0 : 4;
}

int cmd_resolve(const ReplicaOptions& o, const std::string& socket) {
    if (o.keep.empty()) return fail("replica resolve needs --keep NODE: the node whose data survives");
    // Without --yes-destroy-data sanrepd discards nothing: on the node that
    // would lose its replica it answers what it would do.
    auto j = ask(socket, {{"command", "resolve"}, {"keep", o.keep}, {"yes_destroy_data", o.yes_destroy_data}});
    if (!j) return fail(j.error().message);
    if (o.json)
        std::cout << j->dump(2) << "\n";
    else
        std::cout << j->value("result", "") << ": " << j->value("detail", "") << "\n";
    return 0;
}

// promote / demote: the role changes in the running sanrepd (until it
// restarts, when the file's role applies again). A demotion stops the peer
// link after a flush and a promotion may wait for a link: longer than a
// status request.
int cmd_role(const ReplicaOptions& o, const std::string& command, const std::string& volume,
             const std::string& socket) {
    nlohmann::json request{{"command", command}};
    if (command == "promote") request["force"] = o.force;
    auto reply = replicator::control_request(socket, request.dump(), 60'000);
    if (!reply) return fail(reply.error().message);
    auto j = nlohmann::json::parse(*reply, nullptr, false);
    if (!j.is_object()) return fail("sanrepd answered something that is not JSON: " + *reply);
    if (j.contains("error")) return fail(j.value("error", ""));
    if (o.json)
        std::cout << j.dump(2) << "\n";
    else
        std::cout << volume << ": " << j.value("detail", "") << "\n";
    return 0;
}

}  // namespace

// Every volume whose control socket is in the directory (one sanrepd per
// node serves several); a socket nobody answers on is listed with its error.
Result<nlohmann::json> replica_statuses(const std::string& control_dir) {
    namespace fs = std::filesystem;
    std::vector<fs::path> sockets;
    std::error_code ec;
    for (fs::directory_iterator it(control_dir, ec), end; !ec && it != end; it.increment(ec))
        if (it->path().extension() == ".ctl" && it->is_socket()) sockets.push_back(it->path());
    if (ec && ec != std::errc::no_such_file_or_directory)
        return Error{ec.value(), "listing " + control_dir + ": " + ec.message()};
    std::sort(sockets.begin(), sockets.end());
    nlohmann::json all = nlohmann::json::array();
    for (const auto& path : sockets) {
        auto j = ask(path.string(), {{"command", "status"}});
        if (j)
            all.push_back(*j);
        else
            all.push_back({{"volume", path.stem().string()}, {"error", j.error().message}});
    }
    return all;
}

std::string replica_status_lines(const nlohmann::json& statuses) {
    std::ostringstream out;
    for (const auto& j : statuses) {
        if (j.contains("error")) {
            out << j.value("volume", "") << ": no answer: " << j.value("error", "") << "\n";
            continue;
        }
        const auto& p = j.value("peer", nlohmann::json::object());
        out << j.value("volume", "") << ": " << j.value("role", "") << ", replica "
            << j.value("replica", nlohmann::json::object()).value("state", "") << ", peer " << p.value("state", "")
            << ", dirty " << size_text(j.value("dirty_bytes", 0ull));
        if (const auto configured = j.value("configured_role", j.value("role", "")); configured != j.value("role", ""))
            out << " (configured " << configured << ")";
        out << "\n";
    }
    return out.str();
}

int run_replica_command(const std::vector<std::string>& args) {
    auto o = parse(args);
    if (!o) return 2;
    if (o->positional.size() == 1 && o->positional[0] == "status") return cmd_status_all(*o);
    if (o->positional.size() != 2) {
        std::cerr << "usage: sanctl replica status [--control-dir DIR] [--json]\n"
                     "       sanctl replica status|verify|resolve|promote|demote VOLUME [--control PATH | --control-dir DIR] [--json]\n"
                     "       sanctl replica verify VOLUME [--repair] [--no-wait] [--timeout SECONDS]\n"
                     "       sanctl replica resolve VOLUME --keep NODE [--yes-destroy-data]\n"
                     "       sanctl replica promote VOLUME [--force]\n"
                     "       sanctl replica demote VOLUME\n";
        return 2;
    }
    const auto& op = o->positional[0];
    const auto& volume = o->positional[1];
    // sanrepd's own rule for volume names: any name it serves can be named here.
    if (!replicator::valid_volume_name(volume)) return fail("'" + volume + "' is not a valid volume name");
    std::string socket = o->control.empty() ? o->control_dir + "/" + volume + ".ctl" : o->control;
    if (op == "status") return cmd_status(*o, socket);
    if (op == "verify") return cmd_verify(*o, volume, socket);
    if (op == "resolve") return cmd_resolve(*o, socket);
    if (op == "promote" || op == "demote") return cmd_role(*o, op, volume, socket);
    std::cerr << "sanctl: replica status|verify|resolve|promote|demote, not '" << op << "'\n";
    return 2;
}

}  // namespace sanagent::agent
