// sanagentd: the agent daemon. For now it only observes once, reports readiness
// to systemd and waits for SIGTERM; the config/plan/apply spine replaces this.
#include <signal.h>
#include <systemd/sd-daemon.h>

#include <cstring>
#include <iostream>

#include "sanagent/agent/observe.h"

int main(int argc, char** argv) {
    if (argc > 1 && std::strcmp(argv[1], "--version") == 0) {
        std::cout << "sanagentd " << SANAGENT_VERSION << "\n";
        return 0;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, nullptr);

    sanagent::SystemCommandRunner runner;
    auto observation = sanagent::agent::observe_machine({}, runner);
    std::cerr << "sanagentd: observed " << observation.links.size() << " links, "
              << observation.lio.iscsi_targets.size() << " iSCSI targets, " << observation.logical_volumes.size()
              << " logical volumes\n";
    sd_notify(0, "READY=1\nSTATUS=observing only");
    int sig = 0;
    sigwait(&set, &sig);
    sd_notify(0, "STOPPING=1");
    return 0;
}
