// The LIO object tree as observed under a target configfs root, in the shape
// rtslib-fb made familiar: storage objects (backstores) under core/, iSCSI
// targets under iscsi/ with TPGs, portals, LUNs and ACLs with mapped LUNs.
// Reading only; planning and applying changes build on these types.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "sanagent/configfs/tree.h"

namespace sanagent::configfs {

struct StorageObjectState {
    std::string plugin;   // "fileio", "iblock" (the hba dir is <plugin>_<n>)
    std::string hba;      // "fileio_0"
    std::string name;     // the storage object's directory name
    bool enabled = false;
    std::string udev_path;
    std::string serial;   // wwn/vpd_unit_serial, without the kernel's prefix text
    std::map<std::string, std::string> attributes;  // attrib/* that sanagent manages
};

struct MappedLunState {
    std::string name;     // "lun_0" under the ACL
    std::string target_lun;  // "lun_0" of the TPG it maps to
    std::string link_name;   // the symlink's own name (targetcli uses a random one)
};

// CHAP as LIO keeps it under acls/<iqn>/auth/ (one-way: userid/password;
// mutual: the target's own userid_mutual/password_mutual).
struct ChapState {
    std::string userid;
    std::string password;
    std::string mutual_userid;
    std::string mutual_password;
    bool operator==(const ChapState&) const = default;
};

struct AclState {
    std::string initiator_iqn;
    std::vector<MappedLunState> mapped_luns;
    ChapState chap;
};

struct LunState {
    std::string name;     // "lun_0"
    std::string storage_object;  // "<hba>/<name>", from the LUN's symlink
    std::string link_name;       // the symlink's own name
};

struct TpgState {
    unsigned tag = 1;
    bool enabled = false;
    std::map<std::string, std::string> attributes;  // attrib/* that sanagent manages
    std::vector<std::string> portals;  // "IP:PORT" as configfs names them
    std::vector<LunState> luns;
    std::vector<AclState> acls;
};

struct TargetState {
    std::string iqn;
    std::vector<TpgState> tpgs;
};

// iscsi/discovery_auth: CHAP for SendTargets discovery sessions, global to
// the iSCSI fabric (not per target).
struct DiscoveryAuthState {
    bool enforce = false;  // enforce_discovery_auth
    ChapState chap;
};

struct LioState {
    bool present = false;       // the root exists (configfs mounted, target_core_mod loaded)
    bool iscsi_fabric = false;  // iscsi/ exists (made by the first mkdir; loads iscsi_target_mod)
    std::string version;        // core's "version" attribute text
    std::string dbroot;
    std::vector<std::string> hbas;  // core/<plugin>_<n>, also those without storage objects
    std::vector<StorageObjectState> storage_objects;
    std::vector<TargetState> iscsi_targets;
    DiscoveryAuthState discovery_auth;
    // Where each target (by IQN) and storage object ("<hba>/<name>") sits in
    // the vectors above, so a plan over n volumes looks each up in log n.
    // Built by observe_lio (or index_lio); a state assembled by hand without
    // it is searched linearly.
    std::map<std::string, std::size_t> target_index;
    std::map<std::string, std::size_t> storage_object_index;
};

// The attributes sanagent sets and therefore reads back (others are left alone).
inline constexpr const char* kManagedTpgAttributes[] = {"authentication", "generate_node_acls",
                                                        "demo_mode_write_protect", "demo_mode_discovery"};
inline constexpr const char* kManagedStorageAttributes[] = {"emulate_tpu", "emulate_tpws"};

// How much of the tree to read. Every configfs read is a syscall round trip
// (and slow under emulation), so callers that only need the core ask for it.
enum class LioDepth {
    core,  // present, version, dbroot, storage objects by name (no attributes, no fabric)
    // What plan_target and plan_discovery_auth compare, every value of it read
    // (so a change made behind sanagent's back is seen), and no more: storage
    // objects without enable/udev_path; a target whose tpgt_1 exists is read
    // as that one TPG, with only its lun_0 if that exists; an ACL whose lun_0
    // is mapped through a link named "map" (sanagent's) is not listed further.
    // Anything else is read as with full. Removing an ACL needs the full
    // listing (a LUN mapped by hand beside ours): plan again from a full read.
    plan,
    full,  // everything: storage objects with attributes, iSCSI targets, ACLs, CHAP
};

// Reads the tree in one pass (each directory listed once).
LioState observe_lio(const ConfigfsTree& tree, LioDepth depth = LioDepth::full);
// (Re)builds state's lookup indexes after its vectors changed.
void index_lio(LioState& state);

const StorageObjectState* find_storage_object(const LioState& state, const std::string& hba, const std::string& name);
const TargetState* find_target(const LioState& state, const std::string& iqn);
// Whether any storage object lives under the HBA directory `hba` ("fileio_1").
bool has_hba(const LioState& state, const std::string& hba);

// The initiators logged in to a target right now: each ACL whose `info` is not
// the kernel's "No active iSCSI Session" sentence (iscsi_target_configfs.c
// prints that sentence when the ACL has no session; any other text describes
// one, so an unreadable or unexpected `info` counts as logged in), and the
// names in each TPG's `dynamic_sessions` (demo-mode sessions without an ACL).
// Read fresh at each call: sessions come and go.
std::vector<std::string> logged_in_initiators(const ConfigfsTree& tree, const std::string& iqn);

}  // namespace sanagent::configfs
