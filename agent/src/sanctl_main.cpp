// sanctl: how an admin talks to sanagent. See docs/sanctl.md.
#include <cerrno>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "sanagent/agent/agent.h"
#include "sanagent/agent/control.h"
#include "sanagent/agent/observe.h"
#include "sanagent/agent/replica_commands.h"
#include "sanagent/agent/report.h"
#include "sanagent/agent/sr_modules.h"
#include "sanagent/agent/units.h"
#include "sanagent/agent/volume_commands.h"
#include "sanagent/lvm/initiator.h"
#include "sanagent/lvm/iscsi_probe.h"

namespace {

using namespace sanagent::agent;
using namespace std::chrono_literals;

constexpr const char* kUsage = R"(usage: sanctl COMMAND [OPTIONS]

commands:
  config check [--explain]     validate the config; print it merged (secrets redacted),
                               with --explain the file:line of every value
  config schema [--markdown]   the reference table of every section and key
  plan [--json]                the steps that would take this machine to the config
  apply [--json]               run them (through sanagentd when it runs)
  status [--json]              each object: desired, actual, health; then each
                               sanrepd volume (role, replica, peer, dirty) whose
                               control socket is in /run/sanrepd (--control-dir)
  snapshot create|delete VOLUME NAME, snapshot list [VOLUME]
                               thin snapshots of a volume (LV <volume>+<name>)
  snapshot rollback VOLUME NAME [--force]
                               the volume's content back to the snapshot's
                               (refused while initiators are logged in)
  volume delete NAME --yes-destroy-data
                               remove a volume no longer in the config: its
                               target, its LV and its data
  observe [--json] [--target-root DIR]
                               what sanagent sees of this machine: links,
                               the LIO target tree, LVM
  sr probe PORTAL [--target IQN] [--scsi-id ID] [--initiator IQN]
           [--chap-user U --chap-secret-file F] [--json]
                               staged, read with libiscsi (no kernel login):
                               PORTAL alone: the target IQNs; --target: its LUNs
                               with vendor, serial, SCSI id, size and what each
                               holds; --scsi-id: the SRs (VG, uuid, name) on it
  sr attach NAME [--force]     PBD plug: log in, activate the SR's volume group;
                               refused while its MGT names another host as
                               attached unless --force (that host is gone)
  sr detach NAME [--force]     PBD unplug: deactivate, log out; refused while a
                               VDI is open unless --force; apply leaves it
                               detached until sr attach
  vdi path NAME                the block device of a VDI, to give a VM
  vdi create NAME [--sr SR --size SIZE]
                               make a VDI: from [vdi.NAME], or one the config
                               does not list
  vdi delete NAME --yes-destroy-data [--sr SR]
                               remove a VDI not in the config; refused while open
                               or while it has snapshots or clones
  vdi resize NAME SIZE [--force] [--sr SR]
                               grow a VDI not in the config (shrink with --force)
  vdi snapshot NAME SNAPSHOT   read-only LVM snapshot, a VDI of its own
  vdi clone NAME CLONE         writable LVM snapshot, a VDI of its own
  replica status [VOLUME] [--json]
                               sanrepd's view of a replicated volume: role, peer
                               state, resync, async lag, dirty bytes, last verify;
                               without VOLUME one line per volume whose control
                               socket is in /run/sanrepd (--control-dir DIR)
  replica verify VOLUME [--repair] [--no-wait]
                               compare the replicas by checksums while in use;
                               prints mismatched ranges (exit 4 if any); --repair
                               resyncs them from the primary
  replica resolve VOLUME --keep NODE
                               after a split brain: the node that is not NODE
                               discards its copy and is fully resynced
                               (replica commands: --control PATH, default
                               /run/sanrepd/VOLUME.ctl)
  version                      print the version

options:
  --config-dir DIR   the config (default /etc/sanagent: sanagent.conf, conf.d/*.conf)
  --state-dir DIR    override [agent] state_dir (direct runs)
  --socket PATH      override [agent] control_socket
  --direct           do not ask the daemon; observe and apply from this process

exit status: 0 ok; 1 error or invalid config; 2 usage; 3 apply was partial;
             4 replica verify found mismatched ranges
)";

struct Options {
    AgentOptions agent;
    std::optional<std::string> socket;
    bool direct = false;
    bool json = false;
    bool explain = false;
    bool markdown = false;
    std::string replica_control_dir = "/run/sanrepd";
};

int usage_error(const std::string& message) {
    std::cerr << "sanctl: " << message << "\n" << kUsage;
    return 2;
}

// Returns false (after printing) on an unknown argument.
bool parse_options(const std::vector<std::string>& args, Options& o) {
    for (std::size_t i = 0; i < args.size(); ++i) {
        const auto& a = args[i];
        auto next = [&]() -> std::optional<std::string> {
            if (i + 1 >= args.size()) return std::nullopt;
            return args[++i];
        };
        std::optional<std::string> v;
        if (a == "--json") {
            o.json = true;
        } else if (a == "--explain") {
            o.explain = true;
        } else if (a == "--markdown") {
            o.markdown = true;
        } else if (a == "--direct") {
            o.direct = true;
        } else if (a == "--config-dir" && (v = next())) {
            o.agent.load.config_dir = *v;
        } else if (a == "--state-dir" && (v = next())) {
            o.agent.state_dir = *v;
        } else if (a == "--socket" && (v = next())) {
            o.socket = *v;
        } else if (a == "--control-dir" && (v = next())) {
            o.replica_control_dir = *v;
        } else {
            usage_error("unknown or incomplete argument '" + a + "'");
            return false;
        }
    }
    return true;
}

int cmd_config(const std::vector<std::string>& args) {
    if (args.empty()) return usage_error("config needs check or schema");
    Options o;
    if (!parse_options({args.begin() + 1, args.end()}, o)) return 2;
    if (args[0] == "schema") {
        std::cout << schema_markdown();
        return 0;
    }
    if (args[0] != "check") return usage_error("unknown config command '" + args[0] + "'");
    Diagnostics diagnostics;
    auto config = load_and_validate(o.agent, diagnostics);
    if (!diagnostics.empty()) {
        std::cerr << diagnostics.text() << diagnostics.size() << " error(s) in " << o.agent.load.config_dir.string()
                  << "; nothing would be applied\n";
        return 1;
    }
    std::cout << render_config(config, o.explain);
    return 0;
}

// The daemon's socket: --socket, else the config's [agent] control_socket.
std::string socket_path(const Options& o) {
    if (o.socket) return *o.socket;
    Diagnostics ignored;
    return load_config(o.agent.load, ignored).get_string("agent", "", "control_socket");
}

// Ask the daemon; nullopt when it does not run (then the caller works directly).
std::optional<sanagent::Result<nlohmann::json>> ask_daemon(const Options& o, RequestKind kind) {
    if (o.direct) return std::nullopt;
    auto reply = control_call(socket_path(o), {kind}, kind == RequestKind::apply ? 600s : 30s);
    if (!reply && (reply.error().code == ENOENT || reply.error().code == ECONNREFUSED)) return std::nullopt;
    return reply;
}

std::optional<Agent> direct_agent(const Options& o, int& rc) {
    Agent agent(o.agent);
    Diagnostics diagnostics;
    if (!agent.reload(diagnostics)) {
        std::cerr << diagnostics.text() << diagnostics.size() << " error(s); nothing applied\n";
        rc = 1;
        return std::nullopt;
    }
    return agent;
}

int cmd_run(RequestKind kind, const std::vector<std::string>& args) {
    Options o;
    if (!parse_options(args, o)) return 2;
    nlohmann::json result;
    if (auto remote = ask_daemon(o, kind)) {
        if (!*remote) {
            std::cerr << "sanctl: " << remote->error().message << "\n";
            return 1;
        }
        result = **remote;
    } else {
        int rc = 0;
        auto agent = direct_agent(o, rc);
        if (!agent) return rc;
        switch (kind) {
            case RequestKind::plan:
                result = plan_json(agent->plan());
                break;
            case RequestKind::apply:
                result = to_json(agent->apply());
                break;
            default:
                result = {{"objects", to_json(agent->status())}};
        }
    }
    // The replicated volumes: sanrepd answers for them on its own control
    // sockets, read here (the agent's loop never waits on another daemon).
    nlohmann::json replicas = nlohmann::json::array();
    if (kind == RequestKind::status) {
        if (auto r = replica_statuses(o.replica_control_dir))
            replicas = std::move(*r);
        else
            std::cerr << "sanctl: " << r.error().message << "\n";
        if (!replicas.empty()) result["replicas"] = replicas;
    }
    if (o.json) {
        std::cout << result.dump(2) << "\n";
    } else {
        switch (kind) {
            case RequestKind::plan:
                std::cout << plan_text(result);
                break;
            case RequestKind::apply:
                std::cout << apply_text(result);
                break;
            default:
                std::cout << status_text(result);
                if (!replicas.empty()) std::cout << "replicated volumes (sanrepd):\n" << replica_status_lines(replicas);
        }
    }
    if (kind == RequestKind::apply) {
        const auto outcome = result.value("outcome", std::string("failed"));
        return outcome == "ok" ? 0 : outcome == "partial" ? 3 : 1;
    }
    return 0;
}

int cmd_observe(const std::vector<std::string>& args) {
    ObserveOptions options;
    bool json = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--json") {
            json = true;
        } else if (args[i] == "--target-root" && i + 1 < args.size()) {
            options.target_root = args[++i];
        } else {
            return usage_error("observe: unknown argument '" + args[i] + "'");
        }
    }
    sanagent::SystemCommandRunner runner;
    auto observation = observe_machine(options, runner);
    if (json)
        std::cout << to_json(observation).dump(2) << "\n";
    else
        std::cout << to_text(observation);
    return 0;
}

nlohmann::json to_json(const sanagent::lvm::TargetReport& t) {
    nlohmann::json luns = nlohmann::json::array();
    for (const auto& l : t.luns) {
        nlohmann::json j{{"lun", l.lun},
                         {"vendor", l.vendor},
                         {"product", l.product},
                         {"serial", l.serial},
                         {"scsi_id", l.scsi_id},
                         {"size_bytes", l.size_bytes},
                         {"block_size", l.block_size},
                         {"content", l.content.describe()}};
        if (!l.content.sr_uuid.empty()) j["sr"] = {{"name", l.content.sr_name}, {"uuid", l.content.sr_uuid}};
        if (!l.error.empty()) j["error"] = l.error;
        luns.push_back(std::move(j));
    }
    nlohmann::json j{{"target", t.iqn}, {"portals", t.portals}, {"luns", luns}};
    if (!t.error.empty()) j["error"] = t.error;
    return j;
}

int cmd_sr_probe(const std::vector<std::string>& args) {
    sanagent::lvm::ProbeRequest request;
    std::string chap_user, chap_file, scsi_id;
    bool json = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const auto& a = args[i];
        const bool has_value = i + 1 < args.size();
        if (a == "--json") {
            json = true;
        } else if (a == "--target" && has_value) {
            request.target = args[++i];
        } else if (a == "--scsi-id" && has_value) {
            scsi_id = args[++i];
        } else if (a == "--initiator" && has_value) {
            request.initiator = args[++i];
        } else if (a == "--chap-user" && has_value) {
            chap_user = args[++i];
        } else if (a == "--chap-secret-file" && has_value) {
            chap_file = args[++i];
        } else if (request.portal.empty() && !a.starts_with("-")) {
            request.portal = a;
        } else {
            return usage_error("sr probe: unknown or incomplete argument '" + a + "'");
        }
    }
    if (!sanagent::lvm::is_valid_portal(request.portal)) return usage_error("sr probe: expected PORTAL as IPv4[:PORT]");
    if (request.target && !sanagent::lvm::is_valid_iqn(*request.target))
        return usage_error("sr probe: --target expects an IQN");
    if (!scsi_id.empty() &&
        (scsi_id.size() > 128 ||
         scsi_id.find_first_not_of("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_.:-") !=
             std::string::npos))
        return usage_error("sr probe: --scsi-id expects a SCSI id such as 36001405...");
    if (chap_user.empty() != chap_file.empty())
        return usage_error("sr probe: --chap-user and --chap-secret-file go together");
    if (request.initiator.empty()) {
        auto name = sanagent::lvm::read_initiator_name();
        if (!name) {
            std::cerr << "sanctl: " << name.error().message << " (or give --initiator IQN)\n";
            return 1;
        }
        request.initiator = *name;
    }
    if (!chap_file.empty()) {
        auto secret = sanagent::lvm::read_secret_file(chap_file, 0);
        if (!secret) {
            std::cerr << "sanctl: " << secret.error().message << "\n";
            return 1;
        }
        request.chap = sanagent::lvm::ChapCredentials{chap_user, *secret};
    }
    // Staged like XenServer's probe: portal -> targets; + target -> LUNs;
    // + SCSI id -> the SRs on that LUN.
    if (!request.target && scsi_id.empty()) {
        auto targets = sanagent::lvm::discover_targets(request);
        if (!targets) {
            std::cerr << "sanctl: " << targets.error().message << "\n";
            return 1;
        }
        if (json) {
            nlohmann::json out = nlohmann::json::array();
            for (const auto& t : *targets) out.push_back({{"target", t.iqn}, {"portals", t.portals}});
            std::cout << out.dump(2) << "\n";
        } else {
            for (const auto& t : *targets) {
                std::cout << "target " << t.iqn;
                for (const auto& p : t.portals) std::cout << "  " << p;
                std::cout << "\n";
            }
        }
        return 0;
    }
    auto targets = sanagent::lvm::probe_portal(request);
    if (!targets) {
        std::cerr << "sanctl: " << targets.error().message << "\n";
        return 1;
    }
    if (!scsi_id.empty()) {
        nlohmann::json out = nlohmann::json::array();
        bool seen = false;
        for (const auto& t : *targets)
            for (const auto& l : t.luns) {
                if (l.scsi_id != scsi_id) continue;
                seen = true;
                const auto& c = l.content;
                if (c.vg.empty()) {
                    if (!json)
                        std::cout << "no SR on " << scsi_id << " (LUN " << l.lun << " of " << t.iqn
                                  << "): " << (l.error.empty() ? c.describe() : "error: " + l.error) << "\n";
                    continue;
                }
                out.push_back({{"target", t.iqn},
                               {"lun", l.lun},
                               {"scsi_id", scsi_id},
                               {"vg", c.vg},
                               {"vg_uuid", c.vg_uuid},
                               {"sr_name", c.sr_name},
                               {"sr_uuid", c.sr_uuid}});
                if (!json) {
                    if (c.sr_uuid.empty())
                        std::cout << "vg " << c.vg << " (uuid " << c.vg_uuid << "): not an SR\n";
                    else
                        std::cout << "sr " << c.sr_name << "  uuid " << c.sr_uuid << "  vg " << c.vg << " (uuid "
                                  << c.vg_uuid << ")  LUN " << l.lun << " of " << t.iqn << "\n";
                }
            }
        if (json) std::cout << out.dump(2) << "\n";
        if (!seen) {
            std::cerr << "sanctl: no LUN with SCSI id " << scsi_id << " behind " << request.portal << "\n";
            return 1;
        }
        return 0;
    }
    if (json) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& t : *targets) out.push_back(to_json(t));
        std::cout << out.dump(2) << "\n";
    } else {
        for (const auto& t : *targets) {
            std::cout << "target " << t.iqn;
            for (const auto& p : t.portals) std::cout << "  " << p;
            std::cout << "\n";
            if (!t.error.empty()) std::cout << "  error: " << t.error << "\n";
            for (const auto& l : t.luns) {
                std::cout << "  lun " << l.lun << ": ";
                if (!l.error.empty() && l.size_bytes == 0) {
                    std::cout << "error: " << l.error << "\n";
                    continue;
                }
                std::cout << l.vendor << " " << l.product << ", serial " << l.serial << ", scsi id " << l.scsi_id
                          << ", " << l.size_bytes << " bytes (" << l.block_size
                          << "-byte blocks): " << (l.error.empty() ? l.content.describe() : "error: " + l.error)
                          << "\n";
            }
        }
    }
    bool failed = false;
    for (const auto& t : *targets) failed = failed || !t.error.empty();
    return failed ? 1 : 0;
}

int cmd_host(const std::string& kind, const std::vector<std::string>& args) {
    if (args.empty()) return usage_error(kind + " needs a command");
    if (kind == "sr" && args[0] == "probe") return cmd_sr_probe({args.begin() + 1, args.end()});
    if (args.size() < 2 || args[1].starts_with("-")) return usage_error(kind + " " + args[0] + " needs a NAME");
    const std::string op = args[0], name = args[1];
    VdiRequest request;
    request.name = name;
    std::string second;  // resize: SIZE; snapshot, clone: the new VDI's name
    std::vector<std::string> rest;
    for (std::size_t i = 2; i < args.size(); ++i) {
        const auto& a = args[i];
        const bool has_value = i + 1 < args.size();
        if (a == "--force" &&
            ((kind == "sr" && (op == "detach" || op == "attach")) || (kind == "vdi" && op == "resize"))) {
            request.force = true;
        } else if (a == "--yes-destroy-data" && kind == "vdi" && op == "delete") {
            request.destroy = true;
        } else if (a == "--sr" && has_value && kind == "vdi") {
            request.sr = args[++i];
        } else if (a == "--size" && has_value && kind == "vdi" && op == "create") {
            auto size = parse_size(args[++i]);
            if (!size) return usage_error("vdi create: --size: " + size.error().message);
            request.size = *size;
        } else if (second.empty() && !a.starts_with("-") && kind == "vdi" &&
                   (op == "resize" || op == "snapshot" || op == "clone")) {
            second = a;
        } else {
            rest.push_back(a);
        }
    }
    if (kind == "vdi" && (op == "resize" || op == "snapshot" || op == "clone") && second.empty())
        return usage_error("vdi " + op + " NAME needs " + (op == "resize" ? "a SIZE" : "the new VDI's NAME"));
    if (op == "resize") {
        auto size = parse_size(second);
        if (!size) return usage_error("vdi resize: SIZE: " + size.error().message);
        request.size = *size;
    }
    Options o;
    if (!parse_options(rest, o)) return 2;
    Diagnostics diagnostics;
    auto config = load_and_validate(o.agent, diagnostics);
    if (!diagnostics.empty()) {
        std::cerr << diagnostics.text() << diagnostics.size() << " error(s) in the config\n";
        return 1;
    }
    auto seams = default_host_seams(std::make_shared<sanagent::SystemCommandRunner>());
    // The detached marks live where the sr module looks for them: [agent] state_dir.
    const std::filesystem::path state_dir = config.get_string("agent", "", "state_dir");
    sanagent::Status done;
    std::string said;
    if (kind == "vdi" && op == "path") {
        auto path = vdi_path(seams, config, name);
        if (!path) {
            std::cerr << "sanctl: " << path.error().message << "\n";
            return 1;
        }
        std::cout << *path << "\n";
        return 0;
    }
    if (kind == "sr" && op == "attach") {
        done = attach_sr(seams, config, name, state_dir, request.force);
        said = "SR " + name + " attached";
    } else if (kind == "sr" && op == "detach") {
        done = detach_sr(seams, config, name, state_dir, request.force);
        said = "SR " + name + " detached";
    } else if (kind == "vdi" && op == "create") {
        done = create_vdi(seams, config, request);
        said = "VDI " + name + " created";
    } else if (kind == "vdi" && op == "delete") {
        done = remove_vdi(seams, config, request);
        said = "VDI " + name + " deleted";
    } else if (kind == "vdi" && op == "resize") {
        done = resize_vdi(seams, config, request);
        said = "VDI " + name + " is " + format_size(request.size);
    } else if (kind == "vdi" && (op == "snapshot" || op == "clone")) {
        done = copy_vdi(seams, config, request, second, op == "clone");
        said = "VDI " + second + (op == "clone" ? " is a writable clone of " : " is a read-only snapshot of ") + name;
    } else {
        return usage_error("unknown " + kind + " command '" + op + "'");
    }
    if (!done) {
        std::cerr << "sanctl: " << done.error().message << "\n";
        return 1;
    }
    std::cout << said << "\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
        std::cout << kUsage;
        return args.empty() ? 2 : 0;
    }
    const std::string cmd = args[0];
    args.erase(args.begin());
    if (cmd == "observe") return cmd_observe(args);
    if (cmd == "config") return cmd_config(args);
    if (cmd == "sr" || cmd == "vdi") return cmd_host(cmd, args);
    if (cmd == "plan") return cmd_run(RequestKind::plan, args);
    if (cmd == "apply") return cmd_run(RequestKind::apply, args);
    if (cmd == "status") return cmd_run(RequestKind::status, args);
    if (cmd == "snapshot") return run_snapshot_command(args);
    if (cmd == "volume") return run_volume_command(args);
    if (cmd == "replica") return run_replica_command(args);
    if (cmd == "version" || cmd == "--version") {
        std::cout << "sanctl " << SANAGENT_VERSION << "\n";
        return 0;
    }
    return usage_error("unknown command '" + cmd + "'");
}
