// Pools (a VG with a thin pool on the node's data disks) and volumes (LVs) as
// specs, planned against lvm2's reports into steps that run the lvm tools.
// Steps are data: printed by `sanctl plan`, counted by tests, run in order.
//
// Rules kept here:
// - a pool is only made on devices where libblkid finds no signature, unless forced;
// - the thin pool returns errors when full (--errorwhenfull y) instead of
//   queueing I/O forever, so initiators see an error, not a hang;
// - sizes are rounded up to whole extents before comparing, as lvm does;
// - a volume never shrinks unless forced: data past the new end would be lost;
// - nothing here deletes a volume; deletion is an explicit, separate command.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "sanagent/lvm/probe.h"
#include "sanagent/lvm/report.h"

namespace sanagent::lvm {

// Every LV and VG sanagent makes carries this tag: the ownership mark.
inline constexpr const char* kOwnerTag = "sanagent";

struct PoolSpec {
    std::string vg;                    // "sanpool"
    std::vector<std::string> devices;  // "/dev/sdb"
    std::string thin_pool = "thin";
    unsigned thin_pool_percent = 90;   // of the VG; the rest stays for metadata spare and growth
    bool force = false;                // allow devices that hold signatures
};

struct CloneSource {
    std::string volume;                // the golden image
    std::string snapshot;              // optional: a snapshot of it
};

struct VolumeSpec {
    std::string name;
    std::uint64_t size_bytes = 0;
    bool thin = true;                  // provisioning = "thin" | "full"
    std::optional<CloneSource> clone;  // SmartClone: a writable thin snapshot
    bool allow_shrink = false;
};

struct LvmStep {
    std::string description;
    Command command;
};

// Steps to create the pool's PVs, VG and thin pool; an Error (and no step) when
// a device holds a signature and force is off. `signatures` maps each device to
// what probe_signatures() found on it.
Result<std::vector<LvmStep>> plan_pool(const PoolSpec& pool, const std::vector<VolumeGroupState>& vgs,
                                       const std::vector<LogicalVolumeState>& lvs,
                                       const std::map<std::string, std::vector<DeviceSignature>>& signatures);

// Steps to create or grow one volume in `pool`; an Error for a refused shrink or
// a clone whose source does not exist.
Result<std::vector<LvmStep>> plan_volume(const PoolSpec& pool, const VolumeSpec& volume,
                                         const std::vector<VolumeGroupState>& vgs,
                                         const std::vector<LogicalVolumeState>& lvs);

// Explicit operations (sanctl), not plans.
LvmStep snapshot_step(const std::string& vg, const std::string& volume, const std::string& snapshot);
LvmStep delete_step(const std::string& vg, const std::string& lv);

// Rollback of a thin volume to a snapshot (sanctl snapshot rollback).
// `lvconvert --merge` merges a thin snapshot into its origin and consumes it,
// so the snapshot is first copied (a thin snapshot of the snapshot, the LV
// rollback_lv_name(): '_' is not allowed in user snapshot names, so it cannot
// collide) with the snapshot's tags; the snapshot is merged into the volume;
// then the copy takes the snapshot's name back. lvm merges at once only while
// the volume is not open, so the caller takes the LIO export down first.
std::string rollback_lv_name(const std::string& volume);
LvmStep rollback_copy_step(const std::string& vg, const std::string& volume, const std::string& snapshot_lv,
                           const std::vector<std::string>& tags);
LvmStep merge_step(const std::string& vg, const std::string& snapshot_lv);
LvmStep rename_step(const std::string& vg, const std::string& from, const std::string& to);
LvmStep activate_step(const std::string& vg, const std::string& lv, bool active);

// Runs steps in order through the runner; stops at the first failure with the
// tool's stderr in the error.
Status run_steps(CommandRunner& runner, const std::vector<LvmStep>& steps);

// Space the storage model charges a volume: full = size x replication,
// thin = used x replication.
std::uint64_t reserved_bytes(const LogicalVolumeState& lv, unsigned replication);

}  // namespace sanagent::lvm
