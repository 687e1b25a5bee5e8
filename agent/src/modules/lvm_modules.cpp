#include "sanagent/agent/lvm_modules.h"

#include "sanagent/agent/snapshot_schedule.h"
#include "sanagent/agent/units.h"

#include <algorithm>
#include <cstdio>

namespace sanagent::agent {

namespace {

Result<LvmView> read_lvm(CommandRunner& runner) {
    lvm::LvmReporter reporter(runner);
    auto vgs = reporter.volume_groups();
    if (!vgs) return vgs.error();
    auto lvs = reporter.logical_volumes();
    if (!lvs) return lvs.error();
    return LvmView{std::move(*vgs), std::move(*lvs)};
}

const lvm::VolumeGroupState* find_vg(const LvmView& view, const std::string& name) {
    for (const auto& vg : view.vgs)
        if (vg.name == name) return &vg;
    return nullptr;
}

const lvm::LogicalVolumeState* find_lv(const LvmView& view, const std::string& vg, const std::string& name) {
    for (const auto& lv : view.lvs)
        if (lv.vg == vg && lv.name == name) return &lv;
    return nullptr;
}

bool tagged(const std::vector<std::string>& tags) {
    return std::find(tags.begin(), tags.end(), lvm::kOwnerTag) != tags.end();
}

// Each lvm step runs the tool; its undo (when it has one) runs the inverse.
Step lvm_step(const std::string& object, const lvm::LvmStep& s, std::shared_ptr<CommandRunner> runner,
              std::optional<Command> undo, bool claims) {
    Step step;
    step.object = object;
    step.action = s.description + "  (" + s.command.display() + ")";
    step.apply = [runner, cmd = s.command, what = s.description]() -> Status {
        auto r = check_exit(cmd, runner->run(cmd));
        if (!r) return r.error().context(what);
        return {};
    };
    if (undo)
        step.undo = [runner, cmd = *undo]() -> Status {
            auto r = check_exit(cmd, runner->run(cmd));
            if (!r) return r.error();
            return {};
        };
    step.claims = claims;
    return step;
}

std::string percent_text(std::optional<double> p) {
    if (!p) return "-";
    char buf[16];
    std::snprintf(buf, sizeof buf, "%.1f%%", *p);
    return buf;
}

std::optional<lvm::CloneSource> clone_of(const Config& config, const std::string& volume) {
    const ConfigValue* v = config.value("volume", volume, "clone");
    if (!v) return std::nullopt;
    const auto& m = std::get<std::map<std::string, std::string>>(v->data);
    lvm::CloneSource source;
    if (auto it = m.find("from"); it != m.end()) source.volume = it->second;
    if (auto it = m.find("snapshot"); it != m.end()) source.snapshot = it->second;
    return source;
}

// A volume with an explicit `device` (a file, /dev/nbdN) is backed by
// something else; only volumes without one are LVs in a pool.
std::vector<const ConfigObject*> lvm_volumes(const Config& config) {
    std::vector<const ConfigObject*> out;
    for (const auto* v : config.objects("volume"))
        if (!config.value("volume", v->name, "device")) out.push_back(v);
    return out;
}

}  // namespace

Result<const LvmView*> LvmCache::get() {
    if (!view_) {
        auto view = read_lvm(*runner_);
        if (!view) return view.error();
        view_ = std::move(*view);
    }
    return &*view_;
}

bool is_storage_node(const Config& config) {
    auto roles = config.get_list("node", "", "roles");
    return std::find(roles.begin(), roles.end(), "storage") != roles.end() ||
           std::find(roles.begin(), roles.end(), "both") != roles.end();
}

std::string pool_of_volume(const Config& config, const std::string& volume) {
    std::string pool = config.get_string("volume", volume, "pool");
    if (!pool.empty()) return pool;
    auto pools = config.objects("pool");
    return pools.size() == 1 ? pools[0]->name : std::string();
}

lvm::PoolSpec pool_spec(const Config& config, const std::string& pool) {
    lvm::PoolSpec spec;
    spec.vg = config.get_string("pool", pool, "vg");
    spec.devices = config.get_list("pool", pool, "devices");
    spec.thin_pool = config.get_string("pool", pool, "thin_pool");
    spec.thin_pool_percent = static_cast<unsigned>(config.get_integer("pool", pool, "thin_pool_size"));
    spec.force = config.get_bool("pool", pool, "force");
    return spec;
}

// ---- pool -------------------------------------------------------------------

namespace {

// An alert command is run without a shell: its first word must be an absolute path.
void check_alert_command(const ConfigValue* command, const std::string& id, Diagnostics& diagnostics) {
    if (!command) return;
    const auto& argv = std::get<std::vector<std::string>>(command->data);
    if (argv.empty()) return;
    if (argv[0].empty() || argv[0][0] != '/' || argv[0].find("..") != std::string::npos)
        diagnostics.error(command->origin, id, "alert_command",
                          "expected an absolute path to a program first (run without a shell), got \"" +
                              argv[0].substr(0, 80) + "\"");
}

}  // namespace

void PoolModule::validate(const Config& config, Diagnostics& diagnostics) const {
    check_alert_command(config.value("agent", "", "alert_command"), "agent", diagnostics);
    for (const auto* pool : config.objects("pool")) {
        check_alert_command(config.value("pool", pool->name, "alert_command"), pool->id(), diagnostics);
        if (const auto* devices = config.value("pool", pool->name, "devices"))
            for (const auto& dev : std::get<std::vector<std::string>>(devices->data))
                if (dev.empty() || dev[0] != '/' || dev.find("..") != std::string::npos)
                    diagnostics.error(devices->origin, pool->id(), "devices",
                                      "expected absolute device paths, got \"" + dev.substr(0, 80) + "\"");
        if (const auto* size = config.value("pool", pool->name, "thin_pool_size");
            size && (std::get<std::int64_t>(size->data) < 10 || std::get<std::int64_t>(size->data) > 95))
            diagnostics.error(size->origin, pool->id(), "thin_pool_size",
                              "expected 10% to 95% (the rest holds the metadata spare)");
    }
}

Status PoolModule::observe() {
    cache_->invalidate();
    return {};
}

std::vector<std::string> PoolModule::desired_objects(const Config& config) const {
    std::vector<std::string> out;
    if (!is_storage_node(config)) return out;
    for (const auto* pool : config.objects("pool")) out.push_back("pool/" + pool->name);
    return out;
}

std::vector<Step> PoolModule::plan(const Config& config, const Ownership& owned) {
    std::vector<Step> steps;
    if (!is_storage_node(config) || config.objects("pool").empty()) return steps;
    auto cached = cache_->get();
    if (!cached) {
        steps.push_back({"pool/*", "refused: reading lvm: " + cached.error().message,
                         [e = cached.error()]() -> Status { return e; }, {}, false, {}});
        return steps;
    }
    const LvmView& view = **cached;
    for (const auto* pool : config.objects("pool")) {
        const std::string object = "pool/" + pool->name;
        auto spec = pool_spec(config, pool->name);
        const auto* vg = find_vg(view, spec.vg);
        if (vg && !tagged(vg->tags) && !owned.owns(object)) continue;  // foreign: status says so
        std::map<std::string, std::vector<lvm::DeviceSignature>> signatures;
        if (!vg) {
            for (const auto& dev : spec.devices) {
                auto found = probe_(dev);
                if (!found) {
                    // Cannot tell what is on it: as dangerous as a signature.
                    steps.push_back({object, "probe " + dev,
                                     [e = found.error()]() -> Status { return e; }, {}, false, {}});
                    break;
                }
                signatures[dev] = std::move(*found);
            }
            if (!steps.empty() && steps.back().object == object) continue;
        }
        auto planned = lvm::plan_pool(spec, view.vgs, view.lvs, signatures);
        if (!planned) {
            // The refusal becomes a failing step: the object is reported failed
            // with the reason, and nothing else of it runs.
            steps.push_back({object, "refused: " + planned.error().message,
                             [e = planned.error()]() -> Status { return e; }, {}, false, {}});
            continue;
        }
        for (const auto& s : *planned) {
            std::optional<Command> undo;
            const auto& argv = s.command.argv;
            if (argv[1] == "pvcreate") undo = Command({"lvm", "pvremove", "--yes", argv.back()});
            if (argv[1] == "vgcreate") undo = Command({"lvm", "vgremove", "--yes", spec.vg});
            if (argv[1] == "lvcreate") undo = Command({"lvm", "lvremove", "--yes", spec.vg + "/" + spec.thin_pool});
            // lvchange --errorwhenfull: nothing to undo (the pool goes with its lvcreate's undo).
            steps.push_back(lvm_step(object, s, runner_, undo, true));
        }
    }
    return steps;
}

std::vector<ObjectStatus> PoolModule::status(const Config& config, const Ownership& owned) {
    std::vector<ObjectStatus> out;
    if (!is_storage_node(config) || config.objects("pool").empty()) return out;
    auto cached = cache_->get();
    if (!cached) return {{"pool/*", "readable lvm state", "unreadable", Health::failed, cached.error().message}};
    const LvmView& view = **cached;
    for (const auto* pool : config.objects("pool")) {
        const std::string object = "pool/" + pool->name;
        auto spec = pool_spec(config, pool->name);
        ObjectStatus s{object, "vg " + spec.vg + " with thin pool " + spec.thin_pool, "", Health::ok, {}};
        const auto* vg = find_vg(view, spec.vg);
        const auto* thin = find_lv(view, spec.vg, spec.thin_pool);
        if (!vg) {
            s.actual = "absent";
            s.health = Health::degraded;
            s.detail = "not created yet";
        } else if (!tagged(vg->tags) && !owned.owns(object)) {
            s.actual = "vg " + spec.vg + " (not made by sanagent)";
            s.health = Health::foreign;
            s.detail = "a volume group of this name exists without the sanagent tag; not touched";
        } else if (!thin) {
            s.actual = "vg " + spec.vg + " without thin pool";
            s.health = Health::degraded;
            s.detail = "thin pool missing";
        } else {
            const double warn = static_cast<double>(config.get_integer("pool", pool->name, "warn_at"));
            const double crit = static_cast<double>(config.get_integer("pool", pool->name, "critical_at"));
            const double data = thin->data_percent.value_or(0), meta = thin->metadata_percent.value_or(0);
            s.actual = "thin pool " + human_size(thin->size_bytes) + ", data " + percent_text(thin->data_percent) +
                       ", metadata " + percent_text(thin->metadata_percent);
            std::uint64_t provisioned = 0;
            for (const auto& lv : view.lvs)
                if (lv.vg == spec.vg && lv.pool == spec.thin_pool && lv.origin.empty() &&
                    lv.name.find('+') == std::string::npos)  // snapshots (kept ones too) share blocks
                    provisioned += lv.size_bytes;
            if (thin->size_bytes)
                s.actual += ", subscribed " + std::to_string(provisioned * 100 / thin->size_bytes) + "%";
            if (data >= crit || meta >= crit) {
                s.health = Health::failed;
                s.detail = "thin pool nearly full: writes needing new space will fail. Add a device to the pool, "
                           "delete snapshots or volumes, or move volumes to another node";
            } else if (data >= warn || meta >= warn) {
                s.health = Health::degraded;
                s.detail = "thin pool above " + std::to_string(static_cast<int>(warn)) + "%";
            }
        }
        out.push_back(std::move(s));
    }
    return out;
}

// ---- volume -----------------------------------------------------------------

void VolumeModule::validate(const Config& config, Diagnostics& diagnostics) const {
    if (!is_storage_node(config)) return;
    for (const auto* volume : lvm_volumes(config)) {
        // Several pools and no `pool` key is the schema's error already.
        if (config.objects("pool").empty())
            diagnostics.error(volume->origin, volume->id(), "pool", "expected a [pool.NAME] to hold the volume");
        if (const auto* snapshots = config.value("volume", volume->name, "snapshots")) {
            auto schedule = parse_schedule(std::get<std::map<std::string, std::string>>(snapshots->data));
            if (!schedule)
                diagnostics.error(snapshots->origin, volume->id(), "snapshots", schedule.error().message);
            else if (config.get_string("volume", volume->name, "provisioning") != "thin")
                diagnostics.error(snapshots->origin, volume->id(), "snapshots",
                                  "scheduled snapshots are thin and need provisioning = \"thin\"");
        }
        if (const auto* clone = config.value("volume", volume->name, "clone")) {
            const auto& m = std::get<std::map<std::string, std::string>>(clone->data);
            for (const auto& [k, v] : m)
                if (k != "from" && k != "snapshot")
                    diagnostics.error(clone->origin, volume->id(), "clone", "unknown key \"" + k.substr(0, 40) +
                                                                                "\" (expected from, snapshot)");
            auto from = m.find("from");
            if (from == m.end())
                diagnostics.error(clone->origin, volume->id(), "clone", "expected from = \"<volume>\"");
            else if (!config.find("volume", from->second))
                diagnostics.error(clone->origin, volume->id(), "clone",
                                  "clone source \"" + from->second.substr(0, 63) + "\" is not a [volume]");
            else if (from->second == volume->name)
                diagnostics.error(clone->origin, volume->id(), "clone", "a volume cannot be a clone of itself");
        }
    }
}

Status VolumeModule::observe() {
    if (refresh_on_observe_) cache_->invalidate();
    return {};
}

std::vector<std::string> VolumeModule::desired_objects(const Config& config) const {
    std::vector<std::string> out;
    if (!is_storage_node(config)) return out;
    for (const auto* v : lvm_volumes(config)) out.push_back("volume/" + v->name);
    return out;
}

std::vector<Step> VolumeModule::plan(const Config& config, const Ownership& owned) {
    std::vector<Step> steps;
    if (!is_storage_node(config) || lvm_volumes(config).empty()) return steps;
    auto cached = cache_->get();
    if (!cached) {
        steps.push_back({"volume/*", "refused: reading lvm: " + cached.error().message,
                         [e = cached.error()]() -> Status { return e; }, {}, false, {}});
        return steps;
    }
    const LvmView& view = **cached;
    // Golden images before their clones.
    auto volumes = lvm_volumes(config);
    std::stable_sort(volumes.begin(), volumes.end(), [&](const ConfigObject* a, const ConfigObject* b) {
        return !clone_of(config, a->name) && clone_of(config, b->name);
    });
    // Volumes this plan creates count as present for the clones that follow
    // them (a golden image and its clones can arrive in one config).
    std::vector<lvm::LogicalVolumeState> lvs = view.lvs;
    for (const auto* volume : volumes) {
        const std::string object = "volume/" + volume->name;
        auto pool = pool_spec(config, pool_of_volume(config, volume->name));
        const auto* lv = find_lv(view, pool.vg, volume->name);
        if (lv && !tagged(lv->tags) && !owned.owns(object)) continue;  // foreign
        lvm::VolumeSpec spec;
        spec.name = volume->name;
        spec.size_bytes = config.get_size("volume", volume->name, "size");
        spec.thin = config.get_string("volume", volume->name, "provisioning") == "thin";
        spec.clone = clone_of(config, volume->name);
        auto planned = lvm::plan_volume(pool, spec, view.vgs, lvs);
        if (!planned) {
            steps.push_back({object, "refused: " + planned.error().message,
                             [e = planned.error()]() -> Status { return e; }, {}, false, {}});
            continue;
        }
        if (!lv) {
            lvm::LogicalVolumeState planned_lv;
            planned_lv.vg = pool.vg;
            planned_lv.name = volume->name;
            planned_lv.size_bytes = spec.size_bytes;
            lvs.push_back(std::move(planned_lv));
        }
        for (const auto& s : *planned) {
            std::optional<Command> undo;
            if (s.command.argv[1] == "lvcreate")
                undo = Command({"lvm", "lvremove", "--yes", pool.vg + "/" + volume->name});
            steps.push_back(lvm_step(object, s, runner_, undo, true));
        }
    }
    return steps;
}

std::vector<ObjectStatus> VolumeModule::status(const Config& config, const Ownership& owned) {
    std::vector<ObjectStatus> out;
    if (!is_storage_node(config)) return out;
    bool owns_volumes = false;
    for (const auto& [object, module] : owned.objects()) owns_volumes |= module == "volume";
    if (lvm_volumes(config).empty() && !owns_volumes) return out;
    auto cached = cache_->get();
    if (!cached) return {{"volume/*", "readable lvm state", "unreadable", Health::failed, cached.error().message}};
    const LvmView& view = **cached;
    std::set<std::string> listed;
    for (const auto* volume : lvm_volumes(config)) {
        const std::string object = "volume/" + volume->name;
        listed.insert(object);
        auto pool = pool_spec(config, pool_of_volume(config, volume->name));
        const auto size = config.get_size("volume", volume->name, "size");
        const auto provisioning = config.get_string("volume", volume->name, "provisioning");
        ObjectStatus s{object, provisioning + " " + human_size(size), "absent", Health::degraded, "not created yet"};
        if (const auto* lv = find_lv(view, pool.vg, volume->name)) {
            s.actual = std::string(lv->is_thin_volume() ? "thin " : "full ") + human_size(lv->size_bytes);
            if (lv->is_thin_volume()) s.actual += ", uses " + percent_text(lv->data_percent);
            if (!lv->origin.empty()) s.actual += ", clone of " + lv->origin;
            const auto replication = static_cast<unsigned>(config.get_integer("volume", volume->name, "replication"));
            s.actual += ", reserves " + human_size(lvm::reserved_bytes(*lv, replication));
            s.health = Health::ok;
            s.detail.clear();
            if (!tagged(lv->tags) && !owned.owns(object)) {
                s.health = Health::foreign;
                s.detail = "an LV of this name exists without the sanagent tag; not touched";
            } else if (lv->size_bytes < size) {
                s.health = Health::degraded;
                s.detail = "smaller than configured; the next apply grows it";
            }
        }
        out.push_back(std::move(s));
    }
    for (const auto& [object, module] : owned.objects()) {
        if (module != "volume" || listed.count(object)) continue;
        out.push_back({object, "(not in the config)", "kept", Health::orphaned,
                       "removed from the config; its data is kept until sanctl volume delete --yes-destroy-data"});
    }
    return out;
}

}  // namespace sanagent::agent
