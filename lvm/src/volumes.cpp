#include "sanagent/lvm/volumes.h"

#include <algorithm>

namespace sanagent::lvm {

namespace {

// lvm's default when the VG does not exist yet (it will be made with it).
constexpr std::uint64_t kDefaultExtent = 4ull * 1024 * 1024;

const VolumeGroupState* find_vg(const std::vector<VolumeGroupState>& vgs, const std::string& name) {
    for (const auto& vg : vgs)
        if (vg.name == name) return &vg;
    return nullptr;
}

const LogicalVolumeState* find_lv(const std::vector<LogicalVolumeState>& lvs, const std::string& vg,
                                  const std::string& name) {
    for (const auto& lv : lvs)
        if (lv.vg == vg && lv.name == name) return &lv;
    return nullptr;
}

std::string bytes_arg(std::uint64_t bytes) { return std::to_string(bytes) + "b"; }

std::string human(std::uint64_t bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (u < 4 && bytes >= 1024 && bytes % 1024 == 0) {
        bytes /= 1024;
        ++u;
    }
    return std::to_string(bytes) + " " + units[u];
}

LvmStep step(std::string description, std::vector<std::string> argv) {
    // lvm tools can wait on locks and udev; bound every call.
    return LvmStep{std::move(description), Command(std::move(argv), std::chrono::seconds(120))};
}

}  // namespace

Result<std::vector<LvmStep>> plan_pool(const PoolSpec& pool, const std::vector<VolumeGroupState>& vgs,
                                       const std::vector<LogicalVolumeState>& lvs,
                                       const std::map<std::string, std::vector<DeviceSignature>>& signatures) {
    std::vector<LvmStep> steps;
    const VolumeGroupState* vg = find_vg(vgs, pool.vg);
    if (!vg) {
        std::string refused;
        for (const auto& dev : pool.devices) {
            auto it = signatures.find(dev);
            if (it != signatures.end() && !it->second.empty() && !pool.force)
                refused += (refused.empty() ? "" : "; ") + dev + " holds " + describe(it->second);
        }
        if (!refused.empty())
            return Error{EEXIST, "pool " + pool.vg + ": " + refused +
                                     ": refusing to overwrite it (set force = true to use the device anyway)"};
        for (const auto& dev : pool.devices) {
            std::vector<std::string> argv{"lvm", "pvcreate"};
            if (pool.force) argv.insert(argv.end(), {"-ff", "--yes"});
            argv.push_back(dev);
            steps.push_back(step("make " + dev + " an LVM physical volume", std::move(argv)));
        }
        std::vector<std::string> argv{"lvm", "vgcreate", "--addtag", kOwnerTag, pool.vg};
        argv.insert(argv.end(), pool.devices.begin(), pool.devices.end());
        steps.push_back(step("create volume group " + pool.vg, std::move(argv)));
    }
    const LogicalVolumeState* thin = find_lv(lvs, pool.vg, pool.thin_pool);
    if (!thin) {
        steps.push_back(step("create thin pool " + pool.vg + "/" + pool.thin_pool,
                             {"lvm", "lvcreate", "--type", "thin-pool", "--extents",
                              std::to_string(pool.thin_pool_percent) + "%VG", "--addtag", kOwnerTag, "--name",
                              pool.thin_pool, pool.vg}));
    }
    if (!thin || thin->when_full != "error") {
        // A full thin pool fails writes at once rather than queueing them
        // (for 60 s, or forever): the initiator gets an I/O error it can act
        // on, not a hang. lvcreate of lvm2 2.03 refuses the option for thin
        // pools, so it is set right after.
        steps.push_back(step("make " + pool.vg + "/" + pool.thin_pool + " return errors when full",
                             {"lvm", "lvchange", "--errorwhenfull", "y", pool.vg + "/" + pool.thin_pool}));
    }
    return steps;
}

Result<std::vector<LvmStep>> plan_volume(const PoolSpec& pool, const VolumeSpec& volume,
                                         const std::vector<VolumeGroupState>& vgs,
                                         const std::vector<LogicalVolumeState>& lvs) {
    std::vector<LvmStep> steps;
    const VolumeGroupState* vg = find_vg(vgs, pool.vg);
    const std::uint64_t extent = vg && vg->extent_size_bytes ? vg->extent_size_bytes : kDefaultExtent;
    const std::uint64_t want = (volume.size_bytes + extent - 1) / extent * extent;
    const std::string path = pool.vg + "/" + volume.name;
    const LogicalVolumeState* lv = find_lv(lvs, pool.vg, volume.name);

    if (!lv) {
        if (volume.clone) {
            const std::string& source = volume.clone->snapshot.empty() ? volume.clone->volume : volume.clone->snapshot;
            if (!find_lv(lvs, pool.vg, source))
                return Error{ENOENT, "volume " + volume.name + ": clone source " + pool.vg + "/" + source +
                                         " does not exist"};
            // A thin snapshot shares the golden image's blocks; -kn so the clone
            // activates like any volume (snapshots skip activation by default).
            steps.push_back(step("clone " + path + " from " + source,
                                 {"lvm", "lvcreate", "--snapshot", "--setactivationskip", "n", "--addtag", kOwnerTag,
                                  "--name", volume.name, pool.vg + "/" + source}));
            return steps;
        }
        if (volume.thin) {
            steps.push_back(step("create thin volume " + path + " of " + human(want),
                                 {"lvm", "lvcreate", "--type", "thin", "--virtualsize", bytes_arg(want), "--thinpool",
                                  pool.vg + "/" + pool.thin_pool, "--addtag", kOwnerTag, "--name", volume.name,
                                  pool.vg}));
        } else {
            // A full volume reserves its space now; old signatures in the
            // extents are wiped so an initiator never sees a stranger's data.
            steps.push_back(step("create full volume " + path + " of " + human(want),
                                 {"lvm", "lvcreate", "--size", bytes_arg(want), "--wipesignatures", "y", "--yes",
                                  "--addtag", kOwnerTag, "--name", volume.name, pool.vg}));
        }
        return steps;
    }

    if (!volume.clone && lv->is_thin_volume() != volume.thin)
        return Error{EINVAL, "volume " + volume.name + " is " + (lv->is_thin_volume() ? "thin" : "full") +
                                 " but the config says " + (volume.thin ? "thin" : "full") +
                                 "; changing the provisioning of an existing volume is not supported"};
    if (lv->size_bytes < want) {
        steps.push_back(step("grow " + path + " from " + human(lv->size_bytes) + " to " + human(want),
                             {"lvm", "lvextend", "--size", bytes_arg(want), path}));
    } else if (lv->size_bytes > want) {
        if (!volume.allow_shrink)
            return Error{EPERM, "volume " + volume.name + ": shrinking from " + human(lv->size_bytes) + " to " +
                                    human(want) + " would lose the data past " + human(want) +
                                    "; refusing (shrink it with sanctl volume resize --force)"};
        steps.push_back(step("shrink " + path + " from " + human(lv->size_bytes) + " to " + human(want),
                             {"lvm", "lvreduce", "--yes", "--size", bytes_arg(want), path}));
    }
    return steps;
}

LvmStep snapshot_step(const std::string& vg, const std::string& volume, const std::string& snapshot) {
    return step("snapshot " + vg + "/" + volume + " as " + snapshot,
                {"lvm", "lvcreate", "--snapshot", "--addtag", kOwnerTag, "--name", snapshot, vg + "/" + volume});
}

LvmStep delete_step(const std::string& vg, const std::string& lv) {
    return step("delete " + vg + "/" + lv + " and its data", {"lvm", "lvremove", "--yes", vg + "/" + lv});
}

std::string rollback_lv_name(const std::string& volume) {
    return volume + "+_rollback";
}

LvmStep rollback_copy_step(const std::string& vg, const std::string& volume, const std::string& snapshot_lv,
                           const std::vector<std::string>& tags) {
    std::vector<std::string> argv{"lvm", "lvcreate", "--snapshot", "--addtag", kOwnerTag};
    for (const auto& tag : tags)
        if (tag != kOwnerTag) argv.insert(argv.end(), {"--addtag", tag});
    argv.insert(argv.end(), {"--name", rollback_lv_name(volume), vg + "/" + snapshot_lv});
    return step("copy snapshot " + vg + "/" + snapshot_lv + " (it is kept)", argv);
}

LvmStep merge_step(const std::string& vg, const std::string& snapshot_lv) {
    return step("merge " + vg + "/" + snapshot_lv + " into its volume",
                {"lvm", "lvconvert", "--merge", "--yes", vg + "/" + snapshot_lv});
}

LvmStep rename_step(const std::string& vg, const std::string& from, const std::string& to) {
    return step("rename " + vg + "/" + from + " to " + to, {"lvm", "lvrename", vg, from, to});
}

LvmStep activate_step(const std::string& vg, const std::string& lv, bool active) {
    return step(std::string(active ? "activate " : "deactivate ") + vg + "/" + lv,
                {"lvm", "lvchange", "--activate", active ? "y" : "n", vg + "/" + lv});
}

Status run_steps(CommandRunner& runner, const std::vector<LvmStep>& steps) {
    for (const auto& s : steps) {
        auto r = check_exit(s.command, runner.run(s.command));
        if (!r) return r.error().context(s.description);
    }
    return {};
}

std::uint64_t reserved_bytes(const LogicalVolumeState& lv, unsigned replication) {
    if (lv.is_thin_volume()) {
        double used = lv.data_percent.value_or(0.0) / 100.0 * static_cast<double>(lv.size_bytes);
        return static_cast<std::uint64_t>(used) * replication;
    }
    return lv.size_bytes * replication;
}

}  // namespace sanagent::lvm
