// The hypervisor host side: `sr` (a storage repository, LVM over iSCSI the way
// XenServer's lvmoiscsi SR is laid out) and `vdi` (a virtual disk image, one
// LV in an SR). They act only on nodes whose roles include host (or both).
//
// An SR is: an open-iscsi node record for its target and portal (startup
// automatic, replacement_timeout 120 s, CHAP written into the record, never on
// an argv), a session, the LUN found through that session in sysfs, a PV
// (`--metadatasize 10M`) and a VG named VG_XenStorage-<sr-uuid> tagged
// `sanagent`, `sr_name=<name>`, `sr_uuid=<uuid>`, and a 4 MiB `MGT` LV whose
// JSON records the SR and its VDIs. A VDI is an LV `LV-<vdi-uuid>` tagged
// `vdi_name=<name>`. Objects are found again by their tags, so the uuids are
// generated once, at creation, and never change on a re-apply.
//
// A LUN that holds any signature (file system, partition table, another PV)
// is refused unless `force = true`. A create that fails logs out and forgets
// the node records of the sessions that apply made (never one that was there
// before: a live path keeps carrying I/O). An SR is attached to one host at a
// time: MGT's "attached_host" names it; other hosts refuse to attach it or
// change its VDIs (no lock manager for shared LVM metadata). PBD unplug (`sanctl sr detach`) deactivates the VG
// and logs out, refusing while an LV is open; it leaves a mark in the state
// dir so the next apply does not plug it back until `sanctl sr attach`.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sanagent/agent/lvm_modules.h"
#include "sanagent/agent/module.h"
#include "sanagent/lvm/initiator.h"

namespace sanagent::agent {

bool is_host(const Config& config);
// This host's name as SRs record it ("attached_host" in MGT): [node] name, else the hostname.
std::string this_host(const Config& config);

// What the config asks of one SR, with the volume reference resolved.
struct SrSpec {
    std::string name;
    std::string target;                // IQN
    std::vector<std::string> portals;  // "IP:PORT"
    std::string chap_user;
    std::string chap_secret_file;  // empty: no CHAP
    bool force = false;
    // Not config: whether multipathd runs on this host (observed). Then every
    // portal is logged in to as a path and the SR uses the multipath map.
    bool multipath = false;
    // Not config: this host's name (recorded in MGT as the SR's holder), and
    // whether to take the SR over from the host MGT names (sr attach --force).
    std::string host;
    bool take_over = false;
};
SrSpec sr_spec(const Config& config, const std::string& name);

// Whether dm-multipath is in use here: multipathd answers `multipathd show daemon`.
bool multipath_running(CommandRunner& runner);

// Best-practice warnings of an SR from the config alone: its name against its
// volume's, and whether its portals are reached over a storage network (a
// [bond] or [link] with an address in the portal's subnet) or not.
std::vector<std::string> sr_config_warnings(const Config& config, const SrSpec& spec);

// The machine-facing pieces the host modules use; tests replace them.
struct HostSeams {
    std::shared_ptr<CommandRunner> runner;
    std::filesystem::path node_db = "/etc/iscsi/nodes";
    std::filesystem::path sysfs = "/sys";
    std::filesystem::path dev = "/dev";
    SignatureProbe probe;
    uid_t secret_owner = 0;
    std::chrono::milliseconds device_wait{20'000};  // for the LUN's disk to appear after login
};

class SrModule final : public Module {
public:
    explicit SrModule(HostSeams seams) : seams_(std::move(seams)) {}
    std::string_view name() const override { return "sr"; }
    void validate(const Config& config, Diagnostics& diagnostics) const override;
    Status observe() override;
    std::vector<std::string> desired_objects(const Config& config) const override;
    std::vector<Step> plan(const Config& config, const Ownership& owned) override;
    std::vector<ObjectStatus> status(const Config& config, const Ownership& owned) override;

private:
    HostSeams seams_;
    LvmView view_;
    std::vector<lvm::Session> sessions_;
    bool multipath_ = false;
    std::map<std::string, std::string> pvs_;  // VG -> its PV's device, while multipath_
};

class VdiModule final : public Module {
public:
    explicit VdiModule(HostSeams seams) : seams_(std::move(seams)) {}
    std::string_view name() const override { return "vdi"; }
    void validate(const Config& config, Diagnostics& diagnostics) const override;
    Status observe() override;
    std::vector<std::string> desired_objects(const Config& config) const override;
    std::vector<Step> plan(const Config& config, const Ownership& owned) override;
    std::vector<ObjectStatus> status(const Config& config, const Ownership& owned) override;

private:
    HostSeams seams_;
    LvmView view_;
};

// PBD plug / unplug and the VBD path, for sanctl. `state_dir` keeps the
// "detached" marks the SR module honours.
// Attach refuses an SR whose MGT names another host as attached, unless
// `take_over` (--force: that host is gone); detach clears the record.
Status attach_sr(HostSeams& seams, const Config& config, const std::string& name,
                 const std::filesystem::path& state_dir, bool take_over = false);
Status detach_sr(HostSeams& seams, const Config& config, const std::string& name,
                 const std::filesystem::path& state_dir, bool force);
Result<std::string> vdi_path(HostSeams& seams, const Config& config, const std::string& name);

// VDI operations outside an apply (sanctl vdi ...). A VDI is found by its
// name tag: in its configured SR when [vdi.NAME] exists, else in any SR (or
// `sr` when given). Each refuses rather than guesses:
//  - create: from [vdi.NAME], or with `sr` and `size` for a VDI the config
//    does not list (apply leaves such VDIs alone);
//  - remove: only with `destroy` (--yes-destroy-data), never a VDI still in
//    the config (the next apply would make it again), never while its LV is
//    open, never while snapshots or clones of it exist;
//  - resize: grows; shrinking only with `force`; not a configured VDI (its
//    size is the config's), not a VDI with snapshots (LVM refuses to resize
//    an active snapshot origin);
//  - snapshot: a read-only LVM snapshot LV-<new uuid> tagged
//    vdi_name=<snapshot name> and snapshot_of=<vdi>, as large as its origin
//    so it can never overflow; clone: the same, writable, tagged clone_of.
struct VdiRequest {
    std::string name{};
    std::string sr{};        // optional: which SR
    std::uint64_t size = 0;  // create, resize
    bool force = false;      // resize: allow shrinking
    bool destroy = false;    // remove
};
Status create_vdi(HostSeams& seams, const Config& config, const VdiRequest& request);
Status remove_vdi(HostSeams& seams, const Config& config, const VdiRequest& request);
Status resize_vdi(HostSeams& seams, const Config& config, const VdiRequest& request);
Status copy_vdi(HostSeams& seams, const Config& config, const VdiRequest& origin, const std::string& copy,
                bool writable);

HostSeams default_host_seams(std::shared_ptr<CommandRunner> runner);

}  // namespace sanagent::agent
