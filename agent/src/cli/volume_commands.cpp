#include "sanagent/agent/volume_commands.h"

#include <algorithm>
#include <iostream>
#include <optional>

#include "sanagent/agent/agent.h"
#include "sanagent/agent/lvm_modules.h"
#include "sanagent/agent/units.h"
#include "sanagent/configfs/target_plan.h"
#include "sanagent/lvm/report.h"
#include "sanagent/lvm/volumes.h"

namespace sanagent::agent {

namespace {

struct CliOptions {
    AgentOptions agent;
    std::vector<std::string> positional;
    bool destroy = false;
    std::string vg;
};

std::optional<CliOptions> parse(const std::vector<std::string>& args) {
    CliOptions o;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const auto& a = args[i];
        if (a == "--yes-destroy-data") {
            o.destroy = true;
        } else if ((a == "--config-dir" || a == "--state-dir" || a == "--vg") && i + 1 < args.size()) {
            const auto& v = args[++i];
            if (a == "--config-dir") o.agent.load.config_dir = v;
            if (a == "--state-dir") o.agent.state_dir = v;
            if (a == "--vg") o.vg = v;
        } else if (!a.empty() && a[0] == '-') {
            std::cerr << "sanctl: unknown or incomplete argument '" << a << "'\n";
            return std::nullopt;
        } else {
            o.positional.push_back(a);
        }
    }
    return o;
}

int fail(const std::string& message) {
    std::cerr << "sanctl: " << message << "\n";
    return 1;
}

// The config, or nullopt after printing its errors.
std::optional<Config> load(const CliOptions& o) {
    Diagnostics diagnostics;
    Config config = load_and_validate(o.agent, diagnostics);
    if (!diagnostics.empty()) {
        std::cerr << diagnostics.text() << diagnostics.size() << " error(s); nothing done\n";
        return std::nullopt;
    }
    return config;
}

Result<std::vector<lvm::LogicalVolumeState>> read_lvs(CommandRunner& runner) {
    return lvm::LvmReporter(runner).logical_volumes();
}

bool tagged(const lvm::LogicalVolumeState& lv) {
    return std::find(lv.tags.begin(), lv.tags.end(), lvm::kOwnerTag) != lv.tags.end();
}

int run(CommandRunner& runner, const lvm::LvmStep& step) {
    if (auto st = lvm::run_steps(runner, {step}); !st) return fail(st.error().message);
    std::cout << step.description << "\n";
    return 0;
}

}  // namespace

int run_snapshot_command(const std::vector<std::string>& args) {
    auto o = parse(args);
    if (!o || o->positional.empty()) return fail("usage: sanctl snapshot create|list|delete VOLUME [NAME]");
    auto config = load(*o);
    if (!config) return 1;
    const std::string verb = o->positional[0];
    SystemCommandRunner runner;
    auto lvs = read_lvs(runner);
    if (!lvs) return fail(lvs.error().message);

    if (verb == "list") {
        const std::string only = o->positional.size() > 1 ? o->positional[1] : "";
        for (const auto& lv : *lvs) {
            auto plus = lv.name.find('+');
            if (plus == std::string::npos || lv.origin != lv.name.substr(0, plus) || !tagged(lv)) continue;
            if (!only.empty() && lv.origin != only) continue;
            std::cout << lv.origin << "  " << lv.name.substr(plus + 1) << "  " << lv.vg << "/" << lv.name;
            if (lv.data_percent) std::cout << "  data " << *lv.data_percent << "%";
            std::cout << "\n";
        }
        return 0;
    }
    if (o->positional.size() != 3) return fail("usage: sanctl snapshot " + verb + " VOLUME NAME");
    const std::string volume = o->positional[1], name = o->positional[2];
    if (!is_safe_name(name) || name.find('+') != std::string::npos)
        return fail("snapshot name \"" + name.substr(0, 64) + "\": expected [a-z0-9][a-z0-9.-]*");
    if (!config->find("volume", volume)) return fail("no [volume." + volume.substr(0, 64) + "] in the config");
    const std::string vg = config->get_string("pool", pool_of_volume(*config, volume), "vg");
    const lvm::LogicalVolumeState* origin = nullptr;
    for (const auto& lv : *lvs)
        if (lv.vg == vg && lv.name == volume) origin = &lv;
    if (!origin) return fail("volume " + volume + " has no LV in " + vg + " yet (run sanctl apply)");
    const std::string snapshot = volume + "+" + name;
    if (verb == "create") {
        if (!origin->is_thin_volume())
            return fail("volume " + volume + " is full (thick); snapshots are thin and need a thin volume");
        return run(runner, lvm::snapshot_step(vg, volume, snapshot));
    }
    if (verb == "delete") {
        bool exists = false;
        for (const auto& lv : *lvs) exists |= lv.vg == vg && lv.name == snapshot && tagged(lv);
        if (!exists) return fail("no snapshot " + name + " of " + volume);
        return run(runner, lvm::delete_step(vg, snapshot));
    }
    return fail("unknown snapshot command '" + verb + "' (create, list, delete)");
}

int run_volume_command(const std::vector<std::string>& args) {
    auto o = parse(args);
    if (!o || o->positional.size() != 2 || o->positional[0] != "delete")
        return fail("usage: sanctl volume delete NAME --yes-destroy-data");
    const std::string name = o->positional[1];
    if (!is_safe_name(name)) return fail("volume name \"" + name.substr(0, 64) + "\" is not a valid name");
    if (!o->destroy)
        return fail("deleting volume " + name + " destroys its data; say so with --yes-destroy-data");
    auto config = load(*o);
    if (!config) return 1;
    if (config->find("volume", name))
        return fail("volume " + name + " is still in the config; remove its [volume." + name +
                    "] first, or the next apply makes it again");

    SystemCommandRunner runner;
    auto lvs = read_lvs(runner);
    if (!lvs) return fail(lvs.error().message);
    std::vector<const lvm::LogicalVolumeState*> matches;
    for (const auto& lv : *lvs)
        if (lv.name == name && tagged(lv) && (o->vg.empty() || lv.vg == o->vg)) matches.push_back(&lv);
    if (matches.size() > 1) return fail("volume " + name + " exists in several volume groups; name one with --vg");

    // Take its export away first: LIO holds the LV open while it is exported.
    configfs::ConfigfsTree tree(config->get_string("agent", "", "target_root"));
    auto lio = configfs::observe_lio(tree);
    for (const char* plugin : {"iblock", "fileio"}) {
        const std::string hba = configfs::sanagent_hba(plugin);
        if (!configfs::find_storage_object(lio, hba, name)) continue;
        std::string iqn;
        for (const auto& t : lio.iscsi_targets)
            for (const auto& tpg : t.tpgs)
                for (const auto& lun : tpg.luns)
                    if (lun.storage_object == hba + "/" + name) iqn = t.iqn;
        configfs::StorageObjectSpec storage;
        storage.plugin = plugin;
        storage.name = name;
        auto ops = configfs::plan_remove_target(iqn, storage, lio);
        if (auto st = configfs::apply_ops(tree, ops, "target of volume " + name); !st) return fail(st.error().message);
        std::cout << "removed the iSCSI target " << (iqn.empty() ? "(none)" : iqn) << " and its storage object\n";
    }
    if (!matches.empty()) {
        if (int rc = run(runner, lvm::delete_step(matches[0]->vg, name)); rc != 0) return rc;
    } else {
        std::cout << "no LV named " << name << " made by sanagent\n";
    }

    const auto state_dir = o->agent.state_dir ? *o->agent.state_dir
                                              : std::filesystem::path(config->get_string("agent", "", "state_dir"));
    auto owned = Ownership::load(state_dir);
    if (!owned) return fail(owned.error().message);
    owned->release("volume/" + name);
    owned->release("target/" + name);
    if (auto st = owned->save(state_dir); !st) return fail(st.error().message);
    return 0;
}

}  // namespace sanagent::agent
