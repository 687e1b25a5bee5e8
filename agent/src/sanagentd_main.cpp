// sanagentd: the agent daemon. Loads the config, applies it at start, on
// SIGHUP, on a timer and when asked over the control socket; answers status
// and plan requests. One thread, one poll loop over a signalfd, a timerfd and
// the listening socket; each client is served within a read timeout, so a
// stuck client delays the loop by at most that long. See docs/agent.md.
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <systemd/sd-daemon.h>

#include <cstring>
#include <iostream>
#include <map>
#include <optional>

#include "daemon/daemon_log.h"
#include "sanagent/agent/agent.h"
#include "sanagent/agent/control.h"
#include "sanagent/agent/lvm_modules.h"
#include "sanagent/agent/pool_alarms.h"
#include "sanagent/agent/snapshot_schedule.h"
#include "sanagent/agent/report.h"
#include "sanagent/netlink/events.h"

namespace {

using namespace sanagent;
using namespace sanagent::agent;
using namespace std::chrono_literals;

constexpr auto kClientTimeout = 2s;

constexpr const char* kUsage = R"(usage: sanagentd [--config-dir DIR] [--state-dir DIR]

Runs in the foreground: applies the config at start, on SIGHUP, every
[agent] interval and on `sanctl apply`; SIGTERM stops it. See docs/agent.md.
)";

class Daemon {
public:
    Daemon(AgentOptions options, DaemonLog& log)
        : config_dir_(options.load.config_dir.string()), agent_(std::move(options)), log_(log) {}

    int run() {
        sigset_t signals;
        sigemptyset(&signals);
        for (int s : {SIGHUP, SIGTERM, SIGINT}) sigaddset(&signals, s);
        sigprocmask(SIG_BLOCK, &signals, nullptr);
        signal_fd_.reset(::signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK));
        timer_fd_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
        settle_fd_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
        if (!signal_fd_.valid() || !timer_fd_.valid() || !settle_fd_.valid()) {
            log_.error(last_errno("creating signalfd/timerfd").message);
            return 1;
        }
        Diagnostics diagnostics;
        if (!agent_.reload(diagnostics)) {
            for (const auto& d : diagnostics.items()) log_.error(d.text());
            log_.error("invalid config; not starting");
            return 1;
        }
        auto listener = listen_control_socket(agent_.control_socket());
        if (!listener) {
            log_.error(listener.error().message);
            return 1;
        }
        listen_fd_ = std::move(*listener);
        log_.info("listening on " + agent_.control_socket().string());
        // Link and address changes (a port losing carrier) trigger a reconcile
        // after a quiet second; without the monitor the timer still does.
        if (auto monitor = netlink::LinkEventMonitor::open())
            events_.emplace(std::move(*monitor));
        else
            log_.error(monitor.error().message + "; relying on the timer alone");
        arm_timer();
        reconcile("start");
        sd_notify(0, "READY=1");
        notify_status();

        for (;;) {
            pollfd fds[5] = {{signal_fd_.get(), POLLIN, 0},
                             {timer_fd_.get(), POLLIN, 0},
                             {listen_fd_.get(), POLLIN, 0},
                             {settle_fd_.get(), POLLIN, 0},
                             {events_ ? events_->fd() : -1, POLLIN, 0}};
            if (::poll(fds, 5, -1) < 0) {
                if (errno == EINTR) continue;
                log_.error(last_errno("poll").message);
                return 1;
            }
            if (fds[0].revents & POLLIN) {
                signalfd_siginfo info{};
                while (::read(signal_fd_.get(), &info, sizeof info) == sizeof info) {
                    if (info.ssi_signo == SIGHUP) {
                        reload("SIGHUP");
                    } else {
                        log_.info("stopping on signal " + std::to_string(info.ssi_signo));
                        sd_notify(0, "STOPPING=1");
                        ::unlink(agent_.control_socket().c_str());
                        return 0;
                    }
                }
            }
            if (fds[1].revents & POLLIN) {
                std::uint64_t expirations = 0;
                if (::read(timer_fd_.get(), &expirations, sizeof expirations) > 0) reconcile("timer");
            }
            if (fds[2].revents & POLLIN) accept_clients();
            if (fds[4].revents & POLLIN) {
                auto events = events_->drain();
                if (!events.empty()) {
                    itimerspec once{};
                    once.it_value.tv_sec = 1;  // re-armed by every burst: one pass after it settles
                    ::timerfd_settime(settle_fd_.get(), 0, &once, nullptr);
                }
            }
            if (fds[3].revents & POLLIN) {
                std::uint64_t expirations = 0;
                if (::read(settle_fd_.get(), &expirations, sizeof expirations) > 0) reconcile("link event");
            }
        }
    }

private:
    void arm_timer() {
        auto ms = agent_.interval().count();
        itimerspec spec{};
        spec.it_interval.tv_sec = ms / 1000;
        spec.it_interval.tv_nsec = (ms % 1000) * 1'000'000;
        spec.it_value = spec.it_interval;
        ::timerfd_settime(timer_fd_.get(), 0, &spec, nullptr);
    }

    void notify_status() {
        std::string text = "last run " + std::string(outcome_name(last_.outcome)) + ", " +
                           std::to_string(last_.changes) + " change(s)";
        sd_notify(0, ("STATUS=" + text).c_str());
    }

    ApplyReport reconcile(const std::string& why) {
        last_ = agent_.apply([this](const std::string& object, const std::string& step, const std::string& message) {
            log_.write(message.rfind("failed", 0) == 0 ? DaemonLog::Level::error : DaemonLog::Level::info, message,
                       object, step);
        });
        ++runs_;
        for (const auto& e : last_.errors) log_.error(e);
        log_.info("reconcile (" + why + "): " + std::string(outcome_name(last_.outcome)) + ", " +
                  std::to_string(last_.changes) + " change(s)");
        log_health_changes();
        storage_housekeeping();
        notify_status();
        return last_;
    }

    // After a pass on a storage node: pool space alarms (logged once per
    // crossing, alert_command run) and scheduled snapshots, from one lvs report.
    void storage_housekeeping() {
        const Config& config = agent_.config();
        if (!is_storage_node(config) || config.objects("pool").empty()) return;
        SystemCommandRunner runner;
        auto lvs = lvm::LvmReporter(runner).logical_volumes();
        if (!lvs) {
            log_.warning("pool alarms and snapshot schedules skipped: " + lvs.error().message);
            return;
        }
        check_pool_alarms(config, *lvs, agent_.state_dir(), runner,
                          [this](bool warning, const std::string& message, const std::string& object) {
                              log_.write(warning ? DaemonLog::Level::warning : DaemonLog::Level::info, message,
                                         object, "alarm");
                          });
        for (const auto& done : run_snapshot_schedules(config, *lvs, runner, std::chrono::system_clock::now()))
            log_.write(done.failed ? DaemonLog::Level::error : DaemonLog::Level::info, done.message, done.object,
                       "snapshot");
    }

    // Each object's health is logged when it changes, not at every pass.
    void log_health_changes() {
        for (const auto& s : agent_.status()) {
            auto& before = health_[s.object];
            const std::string now(health_name(s.health));
            if (before == now) continue;
            std::string text = s.object + ": " + (before.empty() ? "" : before + " -> ") + now +
                               (s.detail.empty() ? "" : " (" + s.detail + ")");
            log_.write(s.health == Health::ok || s.health == Health::orphaned ? DaemonLog::Level::info
                                                                               : DaemonLog::Level::error,
                       text, s.object, "health");
            before = now;
        }
    }

    // Returns the diagnostics as text, empty when the new config was applied.
    std::string reload(const std::string& why) {
        sd_notify(0, "RELOADING=1");
        Diagnostics diagnostics;
        std::string failure;
        if (agent_.reload(diagnostics)) {
            log_.info("config reloaded (" + why + ")");
            arm_timer();
            reconcile("reload");
        } else {
            for (const auto& d : diagnostics.items()) log_.error(d.text());
            log_.error("config reload (" + why + ") failed; keeping the previous config");
            failure = diagnostics.text();
        }
        sd_notify(0, "READY=1");
        notify_status();
        return failure;
    }

    nlohmann::json handle(const Request& request) {
        switch (request.kind) {
            case RequestKind::status: {
                nlohmann::json daemon{{"version", SANAGENT_VERSION},
                                      {"config_dir", config_dir_},
                                      {"runs", runs_},
                                      {"last_outcome", outcome_name(last_.outcome)},
                                      {"last_changes", last_.changes}};
                return {{"daemon", daemon}, {"objects", to_json(agent_.status())}};
            }
            case RequestKind::plan:
                return plan_json(agent_.plan());
            case RequestKind::apply:
                return to_json(reconcile("sanctl apply"));
            case RequestKind::reload: {
                auto failure = reload("sanctl reload");
                return {{"reloaded", failure.empty()}, {"errors", failure}};
            }
        }
        return nullptr;
    }

    void accept_clients() {
        // Bounded: at most a handful per wake-up, each within kClientTimeout.
        for (int i = 0; i < 8; ++i) {
            UniqueFd client(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
            if (!client.valid()) return;
            ucred cred{};
            socklen_t len = sizeof cred;
            if (::getsockopt(client.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
                (cred.uid != 0 && cred.uid != ::geteuid())) {
                const auto reply = error_reply("permission denied");
                (void)::send(client.get(), reply.data(), reply.size(), MSG_NOSIGNAL);
                continue;
            }
            auto served = serve_client(
                client.get(), [this](const Request& r) { return handle(r); }, kClientTimeout);
            if (!served) log_.warning("control client: " + served.error().message);
        }
    }

    std::string config_dir_;
    Agent agent_;
    DaemonLog& log_;
    UniqueFd signal_fd_, timer_fd_, listen_fd_, settle_fd_;
    std::optional<netlink::LinkEventMonitor> events_;
    std::map<std::string, std::string> health_;  // object -> last logged health
    ApplyReport last_;
    std::size_t runs_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
    AgentOptions options;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--version") {
            std::cout << "sanagentd " << SANAGENT_VERSION << "\n";
            return 0;
        } else if (a == "--help" || a == "-h") {
            std::cout << kUsage;
            return 0;
        } else if (a == "--config-dir" && i + 1 < argc) {
            options.load.config_dir = argv[++i];
        } else if (a == "--state-dir" && i + 1 < argc) {
            options.state_dir = argv[++i];
        } else {
            std::cerr << "sanagentd: unknown argument '" << a << "'\n" << kUsage;
            return 2;
        }
    }
    DaemonLog log;
    Daemon daemon(options, log);
    return daemon.run();
}
