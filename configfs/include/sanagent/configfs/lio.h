// The LIO object tree as observed under a target configfs root, in the shape
// rtslib-fb made familiar: storage objects (backstores) under core/, iSCSI
// targets under iscsi/ with TPGs, portals, LUNs and ACLs with mapped LUNs.
// Reading only; planning and applying changes build on these types.
#pragma once

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
};

struct MappedLunState {
    std::string name;     // "lun_0" under the ACL
    std::string target_lun;  // "lun_0" of the TPG it maps to
};

struct AclState {
    std::string initiator_iqn;
    std::vector<MappedLunState> mapped_luns;
};

struct LunState {
    std::string name;     // "lun_0"
    std::string storage_object;  // "<hba>/<name>", from the LUN's symlink
};

struct TpgState {
    unsigned tag = 1;
    bool enabled = false;
    std::vector<std::string> portals;  // "IP:PORT" as configfs names them
    std::vector<LunState> luns;
    std::vector<AclState> acls;
};

struct TargetState {
    std::string iqn;
    std::vector<TpgState> tpgs;
};

struct LioState {
    bool present = false;       // the root exists (configfs mounted, target_core_mod loaded)
    std::string version;        // core's "version" attribute text
    std::string dbroot;
    std::vector<StorageObjectState> storage_objects;
    std::vector<TargetState> iscsi_targets;
};

// Reads the whole tree in one pass (each directory listed once).
LioState observe_lio(const ConfigfsTree& tree);

}  // namespace sanagent::configfs
