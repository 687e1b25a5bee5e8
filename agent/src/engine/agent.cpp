#include "sanagent/agent/agent.h"

#include "sanagent/agent/dbroot_module.h"
#include "sanagent/agent/lvm_modules.h"
#include "sanagent/agent/network_modules.h"
#include "sanagent/agent/sr_modules.h"
#include "sanagent/agent/target_module.h"
#include "sanagent/agent/time_module.h"
#include "sanagent/lvm/probe.h"

namespace sanagent::agent {

std::vector<std::unique_ptr<Module>> default_modules(const Config& config) {
    std::vector<std::unique_ptr<Module>> modules;
    auto lio = std::make_shared<configfs::ConfigfsTree>(config.get_string("agent", "", "target_root"));
    // Plan order: the storage network first (portals need their addresses),
    // then dbroot before anything registers a LIO device.
    auto netlink = std::make_shared<NetlinkSession>();
    modules.push_back(std::make_unique<LinkModule>(netlink));
    modules.push_back(std::make_unique<BondModule>(netlink, config.get_string("agent", "", "target_root")));
    modules.push_back(std::make_unique<DbrootModule>(lio));
    // Pools before the volumes they hold.
    auto runner = std::make_shared<SystemCommandRunner>();
    auto lvm_state = std::make_shared<LvmCache>(runner);
    modules.push_back(std::make_unique<PoolModule>(lvm_state, lvm::probe_signatures));
    modules.push_back(std::make_unique<VolumeModule>(lvm_state));
    // After the LVs exist: targets export them.
    modules.push_back(std::make_unique<TargetModule>(lio));
    // One time source, after the storage objects.
    modules.push_back(std::make_unique<TimeModule>(runner));
    // Host side, only on hosts (a storage node need not have open-iscsi, and
    // should not pay for more lvm reports): SRs before the VDIs in them.
    if (is_host(config)) {
        modules.push_back(std::make_unique<SrModule>(default_host_seams(runner)));
        modules.push_back(std::make_unique<VdiModule>(default_host_seams(runner)));
    }
    return modules;
}

Config load_and_validate(const AgentOptions& options, Diagnostics& diagnostics) {
    Config config = load_config(options.load, diagnostics);
    Engine(options.modules(config)).validate(config, diagnostics);
    return config;
}

bool Agent::reload(Diagnostics& diagnostics) {
    Config fresh = load_and_validate(options_, diagnostics);
    if (!diagnostics.empty()) return false;
    config_ = std::move(fresh);
    engine_ = std::make_unique<Engine>(options_.modules(config_));
    return true;
}

std::filesystem::path Agent::state_dir() const {
    return options_.state_dir ? *options_.state_dir
                              : std::filesystem::path(config_.get_string("agent", "", "state_dir"));
}

std::filesystem::path Agent::control_socket() const {
    return config_.get_string("agent", "", "control_socket");
}

std::chrono::milliseconds Agent::interval() const {
    return config_.get_duration("agent", "", "interval");
}

Agent::PlanResult Agent::plan() {
    PlanResult result;
    if (!engine_) {
        result.errors.push_back("no valid config loaded");
        return result;
    }
    auto owned = Ownership::load(state_dir());
    if (!owned) {
        result.errors.push_back(owned.error().message);
        return result;
    }
    result.steps = engine_->plan(config_, *owned, result.errors);
    return result;
}

ApplyReport Agent::apply(const LogSink& log) {
    ApplyReport report;
    if (!engine_) {
        report.outcome = Outcome::failed;
        report.errors.push_back("no valid config loaded");
        return report;
    }
    auto owned = Ownership::load(state_dir());
    if (!owned) {
        report.outcome = Outcome::failed;
        report.errors.push_back(owned.error().message);
        return report;
    }
    std::vector<std::string> errors;
    auto steps = engine_->plan(config_, *owned, errors);
    report = engine_->apply(std::move(steps), *owned, log);
    report.errors = std::move(errors);
    if (!report.errors.empty() && report.outcome == Outcome::ok) report.outcome = Outcome::partial;
    if (report.changes > 0) {
        if (auto saved = owned->save(state_dir()); !saved) {
            report.errors.push_back(saved.error().message);
            if (report.outcome == Outcome::ok) report.outcome = Outcome::partial;
        }
    }
    return report;
}

std::vector<ObjectStatus> Agent::status() {
    if (!engine_) return {};
    auto owned = Ownership::load(state_dir());
    if (!owned)
        return {{"agent/ownership", "readable owned.json", "unreadable", Health::failed, owned.error().message}};
    return engine_->status(config_, *owned);
}

}  // namespace sanagent::agent
