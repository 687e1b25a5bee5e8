// Planning and applying LIO iSCSI targets: from a TargetSpec (what one volume's
// export should be) and the observed LioState, the ordered configfs operations
// that converge the kernel, as data that can be printed, tested and counted.
//
// The order is the kernel's (target_core_configfs.c, iscsi_target_tpg.c) and
// rtslib-fb's restore order:
//   storage object: mkdir, control, udev_path, enable, then wwn/vpd_unit_serial
//     (refused once the device is exported) and attrib/*;
//   target: mkdir target, mkdir tpgt_1, attrib/* (authentication,
//     generate_node_acls=0, demo_mode_write_protect=1), LUN + its symlink to the
//     storage object, portals, ACLs + mapped LUN symlink + CHAP, and `enable`
//     last, so no initiator sees a half-built TPG;
//   removal: the reverse, starting with `enable` = 0.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "sanagent/configfs/lio.h"
#include "sanagent/configfs/tree.h"

namespace sanagent::configfs {

// sanagent's storage objects live under their own HBA index per plugin, so the
// kernel itself tells which were made by sanagent (targetcli counts from 0).
inline constexpr unsigned kSanagentHbaIndex = 57;
std::string sanagent_hba(const std::string& plugin);

struct StorageObjectSpec {
    std::string plugin = "iblock";  // "iblock" (a block device) or "fileio" (a file)
    std::string name;               // the volume's name
    std::string device;             // /dev/... for iblock, a file for fileio
    std::uint64_t size_bytes = 0;   // fileio only
    std::string serial;             // wwn/vpd_unit_serial: stable, derived from the volume
    bool thin = true;               // UNMAP (emulate_tpu/tpws) so thin volumes give space back
};

struct ChapSpec {
    std::string userid;
    std::string password;           // secret: never printed
    std::string mutual_userid;
    std::string mutual_password;    // secret: never printed
};

struct AclSpec {
    std::string initiator_iqn;
    std::optional<ChapSpec> chap;
};

struct TargetSpec {
    std::string iqn;
    StorageObjectSpec storage;
    std::vector<std::string> portals;  // "10.0.10.11:3260", "[fd00::1]:3260"
    std::vector<AclSpec> acls;
};

struct ConfigfsOp {
    enum class Kind { MakeDir, RemoveDir, Write, MakeLink, RemoveLink };
    Kind kind = Kind::MakeDir;
    std::filesystem::path path;         // relative to the target root
    std::string value;                  // Write: the value
    std::filesystem::path link_target;  // MakeLink: what the link points at
    bool secret = false;                // Write of a CHAP password: value never shown
    std::string why;                    // what this step is for, for `sanctl plan`

    std::string describe() const;       // one line; secrets redacted
};

// The ops that take `observed` to `spec` for one target and its storage object.
// Empty when the kernel already matches. Objects beyond the spec (extra ACLs,
// portals) are removed; the storage object and the target are never removed here.
std::vector<ConfigfsOp> plan_target(const TargetSpec& spec, const LioState& observed);

// The ops that tear one target down, then its storage object (explicit delete only).
std::vector<ConfigfsOp> plan_remove_target(const std::string& iqn, const StorageObjectSpec& storage,
                                           const LioState& observed);

// iscsi/discovery_auth: with `chap`, SendTargets needs CHAP (enforce=1 and the
// credentials); without, discovery is open again (enforce=0, credentials unset).
// Empty when the kernel already matches. Needs the iscsi fabric registered.
std::vector<ConfigfsOp> plan_discovery_auth(const std::optional<ChapSpec>& chap, const LioState& observed);

// Runs ops in order. On a failure, undoes the directories and links this call
// created, newest first, and returns the failing op's error with its context.
Status apply_ops(ConfigfsTree& tree, const std::vector<ConfigfsOp>& ops, const std::string& object);

}  // namespace sanagent::configfs
