#include "sanagent/agent/volume_commands.h"

#include <algorithm>
#include <iostream>
#include <optional>

#include "sanagent/agent/agent.h"
#include "sanagent/agent/lvm_modules.h"
#include "sanagent/agent/target_module.h"
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
    bool force = false;
    std::string vg;
};

std::optional<CliOptions> parse(const std::vector<std::string>& args) {
    CliOptions o;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const auto& a = args[i];
        if (a == "--yes-destroy-data") {
            o.destroy = true;
        } else if (a == "--force") {
            o.force = true;
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

// The volume's export, as the target module makes it, made again from the
// config (same IQN, ACLs, CHAP and serial, so the host sees the same disk).
Status export_again(configfs::ConfigfsTree& tree, const Config& config, const std::string& volume) {
    auto spec = TargetModule::target_spec(config, volume);
    if (!spec) return spec.error().context("exporting volume " + volume + " again");
    auto ops = configfs::plan_target(*spec, configfs::observe_lio(tree));
    return configfs::apply_ops(tree, ops, "target of volume " + volume);
}

}  // namespace

// Rollback: volume content back to the snapshot's, the snapshot kept.
//   1. refuse while initiators are logged in (unless --force);
//   2. lvcreate a thin copy of the snapshot       way back: lvremove the copy
//      (lvconvert --merge consumes the snapshot;
//      the copy takes its name afterwards)
//   3. take the volume's LIO target down (LIO     way back: export it again
//      holds the LV open, and lvm merges a thin
//      snapshot at once only into a closed origin)
//   4. check nothing else holds the LV open       way back: 3 and 2 undone
//   5. lvconvert --merge the snapshot into the volume: the one step that
//      changes the content; it completes or fails having changed nothing;
//   6. activate the volume, export it again, rename the copy to the
//      snapshot's name.
// A failure before 5 leaves the volume exported with its old content.
Status rollback_volume(CommandRunner& runner, configfs::ConfigfsTree& tree, const Config& config,
                       const std::string& vg, const std::string& volume, const lvm::LogicalVolumeState& snapshot,
                       bool force, std::ostream& out) {
    // A merge under a replicated volume would change one replica without the
    // replicator knowing (its generations and bitmaps would call the copies
    // in sync): refused until sanrepd can mark the whole volume for resync.
    if (config.get_integer("volume", volume, "replication") > 1)
        return Error{EOPNOTSUPP, "volume " + volume +
                                     " is replicated; a rollback would change one replica behind the replicator's "
                                     "back, so it is not offered for replicated volumes yet"};
    const std::string copy = lvm::rollback_lv_name(volume);
    const std::string iqn = TargetModule::target_iqn(config, volume);
    auto sessions = configfs::logged_in_initiators(tree, iqn);
    if (!sessions.empty()) {
        std::string names;
        for (const auto& s : sessions) names += (names.empty() ? "" : ", ") + s;
        if (!force)
            return Error{EBUSY, "initiators are logged in to " + iqn + ": " + names +
                                    "; log them out first (a host that keeps running on a disk whose content "
                                    "changes under it corrupts it), or pass --force to drop their sessions"};
        out << "--force: dropping the sessions of " << names << "\n";
    }
    auto remove_copy = [&] { (void)lvm::run_steps(runner, {lvm::delete_step(vg, copy)}); };

    if (auto st = lvm::run_steps(runner, {lvm::rollback_copy_step(vg, volume, snapshot.name, snapshot.tags)}); !st)
        return st.error();

    bool exported = false;
    auto lio = configfs::observe_lio(tree);
    const std::string hba = configfs::sanagent_hba("iblock");
    if (configfs::find_storage_object(lio, hba, volume)) {
        exported = true;
        configfs::StorageObjectSpec storage;
        storage.plugin = "iblock";
        storage.name = volume;
        auto ops = configfs::plan_remove_target(iqn, storage, lio);
        if (auto st = configfs::apply_ops(tree, ops, "target of volume " + volume); !st) {
            auto back = export_again(tree, config, volume);
            remove_copy();
            return Error{EIO, st.error().message + (back ? "; the export was made again, nothing changed"
                                                         : "; making the export again failed too: " +
                                                               back.error().message + " (run sanctl apply)")};
        }
        out << "took the iSCSI target " << iqn << " down\n";
    }
    auto undo = [&](const std::string& why) {
        std::string text = why;
        if (exported)
            if (auto st = export_again(tree, config, volume); !st)
                text += "; making the export again failed: " + st.error().message + " (run sanctl apply)";
        remove_copy();
        return Error{EIO, text + "; the volume keeps its content"};
    };

    // lvm defers a merge into an open origin to its next activation: refuse
    // instead, so the content never changes later behind an export.
    auto lvs = read_lvs(runner);
    if (!lvs) return undo(lvs.error().message);
    for (const auto& lv : *lvs)
        if (lv.vg == vg && lv.name == volume && lv.is_open())
            return undo("volume " + volume + " is still open (a mount, a device-mapper holder or another export "
                        "holds /dev/" + vg + "/" + volume + ")");

    if (auto st = lvm::run_steps(runner, {lvm::merge_step(vg, snapshot.name)}); !st) return undo(st.error().message);
    lvs = read_lvs(runner);
    bool merged = lvs.ok();
    if (lvs)
        for (const auto& lv : *lvs) merged &= !(lv.vg == vg && lv.name == snapshot.name);
    if (!merged)
        return Error{EIO, "lvm did not finish merging " + vg + "/" + snapshot.name + " into " + volume +
                              "; it finishes when the volume is next activated (lvchange -an/-ay " + vg + "/" +
                              volume + "); the volume is not exported until then (run sanctl apply after); the " +
                              "snapshot's copy is " + vg + "/" + copy};
    if (auto st = lvm::run_steps(runner, {lvm::activate_step(vg, volume, true)}); !st)
        return st.error().context("rolled back, but not active and not exported: run sanctl apply");
    out << "rolled " << volume << " back to " << snapshot.name << "\n";
    std::string left;
    if (exported) {
        if (auto st = export_again(tree, config, volume); !st)
            left = st.error().message + "; the volume is rolled back but not exported: run sanctl apply";
        else
            out << "exported " << iqn << " again\n";
    }
    if (auto st = lvm::run_steps(runner, {lvm::rename_step(vg, copy, snapshot.name)}); !st)
        left += (left.empty() ? "" : "; ") + st.error().message + "; the snapshot's content is in " + vg + "/" +
                copy + " (lvrename it to " + snapshot.name + ")";
    if (!left.empty()) return Error{EIO, left};
    return {};
}

int run_snapshot_command(const std::vector<std::string>& args) {
    auto o = parse(args);
    if (!o || o->positional.empty())
        return fail("usage: sanctl snapshot create|list|delete|rollback VOLUME [NAME] [--force]");
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
            // By name: a snapshot kept through a rollback is a copy whose
            // origin (the merged snapshot) is gone.
            if (plus == std::string::npos || !tagged(lv) || lv.is_thin_pool()) continue;
            const std::string of = lv.name.substr(0, plus);
            if (!only.empty() && of != only) continue;
            std::cout << of << "  " << lv.name.substr(plus + 1) << "  " << lv.vg << "/" << lv.name;
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
    if (verb == "rollback") {
        const lvm::LogicalVolumeState* found = nullptr;
        for (const auto& lv : *lvs) {
            if (lv.vg == vg && lv.name == snapshot && tagged(lv)) found = &lv;
            if (lv.vg == vg && lv.name == lvm::rollback_lv_name(volume))
                return fail("an earlier rollback of " + volume + " left " + vg + "/" + lv.name +
                            " behind (a copy of the snapshot it rolled back to); look at it (lvs -a " + vg +
                            ") and lvrename or lvremove it before rolling back again");
        }
        if (!found) return fail("no snapshot " + name + " of " + volume);
        configfs::ConfigfsTree tree(config->get_string("agent", "", "target_root"));
        if (auto st = rollback_volume(runner, tree, *config, vg, volume, *found, o->force, std::cout); !st)
            return fail(st.error().message);
        return 0;
    }
    return fail("unknown snapshot command '" + verb + "' (create, list, delete, rollback)");
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
