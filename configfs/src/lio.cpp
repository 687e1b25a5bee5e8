#include "sanagent/configfs/lio.h"

#include <algorithm>
#include <charconv>
#include <optional>

namespace sanagent::configfs {

namespace fs = std::filesystem;

namespace {

// "fileio_0" -> "fileio"; hba directories are named <plugin>_<index>.
std::string plugin_of(const std::string& hba) {
    auto pos = hba.rfind('_');
    return pos == std::string::npos ? hba : hba.substr(0, pos);
}

// The kernel prints "T10 VPD Unit Serial Number: <serial>".
std::string strip_serial(std::string text) {
    auto pos = text.find(": ");
    return pos == std::string::npos ? text : text.substr(pos + 2);
}

using Dir = ConfigfsTree::Dir;

// LIO treats the value "NULL" as "not set" (iscsi_target_configfs.c).
std::string auth_value(const Dir& tree, const std::string& path) {
    auto v = tree.read_attr(path).value_or("");
    return v == "NULL" ? std::string() : v;
}

ChapState read_chap(const Dir& tree, const std::string& dir) {
    ChapState chap;
    chap.userid = auth_value(tree, dir + "/userid");
    chap.password = auth_value(tree, dir + "/password");
    chap.mutual_userid = auth_value(tree, dir + "/userid_mutual");
    chap.mutual_password = auth_value(tree, dir + "/password_mutual");
    return chap;
}

// The mapped LUNs of one ACL. With LioDepth::plan, an ACL whose lun_0 is
// mapped by sanagent's own link name ("map") is settled by that one
// readlink: plan_target asks only about lun_0, and listing two directories
// per ACL was a fifth of a no-change pass.
void read_mapped_luns(const Dir& tree, const std::string& acl_dir, LioDepth depth, AclState& acl) {
    if (depth == LioDepth::plan)
        if (auto to = tree.read_link(acl_dir + "/lun_0/map")) {
            acl.mapped_luns.push_back({"lun_0", to->filename().string(), "map"});
            return;
        }
    for (const auto& mapped : tree.list_dirs(acl_dir)) {
        if (mapped.rfind("lun_", 0) != 0) continue;
        MappedLunState m;
        m.name = mapped;
        const std::string dir = acl_dir + "/" + mapped;
        for (const auto& link : tree.list_links(dir)) {
            m.link_name = link;
            if (auto to = tree.read_link(dir + "/" + link)) m.target_lun = to->filename().string();
        }
        acl.mapped_luns.push_back(std::move(m));
    }
}

// `tree` is the TPG's directory: everything below is read relative to it.
TpgState read_tpg(const Dir& tree, unsigned tag, std::optional<std::string> enable, LioDepth depth) {
    TpgState tpg;
    tpg.tag = tag;
    if (!enable) enable = tree.read_attr("enable");
    tpg.enabled = enable.value_or("0") == "1";
    for (const char* attr : kManagedTpgAttributes)
        if (auto v = tree.read_attr(std::string("attrib/") + attr)) tpg.attributes[attr] = *v;
    tpg.portals = tree.list_dirs("np");
    auto read_lun = [&](const std::string& lun_name, const std::vector<std::string>& links) {
        LunState lun;
        lun.name = lun_name;
        const std::string lun_dir = "lun/" + lun_name;
        for (const auto& link : links) {
            lun.link_name = link;
            if (auto target_path = tree.read_link(lun_dir + "/" + link)) {
                // core/<hba>/<name>
                const std::string& to = target_path->native();
                const auto slash = to.find('/', 5);
                if (to.rfind("core/", 0) == 0 && slash != std::string::npos &&
                    to.find('/', slash + 1) == std::string::npos)
                    lun.storage_object = to.substr(5);
            }
        }
        tpg.luns.push_back(std::move(lun));
    };
    // plan_target asks only about lun_0: with LioDepth::plan, a lun_0 that
    // is there is read without listing lun/.
    std::optional<std::vector<std::string>> lun0;
    if (depth == LioDepth::plan) lun0 = tree.links_in("lun/lun_0");
    if (lun0)
        read_lun("lun_0", *lun0);
    else
        for (const auto& lun_name : tree.list_dirs("lun")) read_lun(lun_name, tree.list_links("lun/" + lun_name));
    for (const auto& initiator : tree.list_dirs("acls")) {
        AclState acl;
        acl.initiator_iqn = initiator;
        const std::string acl_dir = "acls/" + initiator;
        acl.chap = read_chap(tree, acl_dir + "/auth");
        read_mapped_luns(tree, acl_dir, depth, acl);
        tpg.acls.push_back(std::move(acl));
    }
    return tpg;
}

}  // namespace

LioState observe_lio(const ConfigfsTree& configfs, LioDepth depth) {
    LioState state;
    // Every read of the pass goes through this one open directory.
    const Dir tree = configfs.open_dir("");
    state.present = tree.valid();
    if (!state.present) return state;
    state.version = tree.read_attr("version").value_or("");
    state.dbroot = tree.read_attr("dbroot").value_or("");
    const auto fabric = tree.list_dirs("iscsi");
    state.iscsi_fabric = tree.open_dir("iscsi").valid();
    if (state.iscsi_fabric && depth != LioDepth::core) {
        const std::string da = "iscsi/discovery_auth";
        if (std::find(fabric.begin(), fabric.end(), "discovery_auth") != fabric.end()) {
            state.discovery_auth.enforce = tree.read_attr(da + "/enforce_discovery_auth").value_or("0") == "1";
            state.discovery_auth.chap = read_chap(tree, da);
        }
    }

    for (const auto& hba : tree.list_dirs("core")) {
        if (hba == "alua") continue;
        state.hbas.push_back(hba);
        for (const auto& name : tree.list_dirs("core/" + hba)) {
            if (name == "hba_info" || name == "hba_mode") continue;
            const std::string dir = "core/" + hba + "/" + name;
            StorageObjectState so;
            so.plugin = plugin_of(hba);
            so.hba = hba;
            so.name = name;
            if (depth == LioDepth::core) {
                state.storage_objects.push_back(std::move(so));
                continue;
            }
            if (depth == LioDepth::full) {
                // Shown by `sanctl observe`; no plan compares them (a storage
                // object cannot be disabled, and udev_path is set once with it).
                so.enabled = tree.read_attr(dir + "/enable").value_or("0") == "1";
                so.udev_path = tree.read_attr(dir + "/udev_path").value_or("");
            }
            so.serial = strip_serial(tree.read_attr(dir + "/wwn/vpd_unit_serial").value_or(""));
            for (const char* attr : kManagedStorageAttributes)
                if (auto v = tree.read_attr(dir + "/attrib/" + attr)) so.attributes[attr] = *v;
            state.storage_objects.push_back(std::move(so));
        }
    }

    if (depth == LioDepth::core) {
        index_lio(state);
        return state;
    }
    for (const auto& iqn : fabric) {
        if (iqn == "discovery_auth") continue;
        TargetState target;
        target.iqn = iqn;
        const std::string tdir = "iscsi/" + iqn;
        // sanagent's targets have the one TPG 1: with LioDepth::plan its
        // enable attribute stands in for listing the target directory.
        if (depth == LioDepth::plan) {
            Dir tpg1 = tree.open_dir(tdir + "/tpgt_1");
            if (auto enable = tpg1.read_attr("enable")) {
                target.tpgs.push_back(read_tpg(tpg1, 1, std::move(enable), depth));
                state.iscsi_targets.push_back(std::move(target));
                continue;
            }
        }
        for (const auto& tpg_dir : tree.list_dirs(tdir)) {
            if (tpg_dir.rfind("tpgt_", 0) != 0) continue;
            unsigned tag = 0;
            std::from_chars(tpg_dir.data() + 5, tpg_dir.data() + tpg_dir.size(), tag);
            target.tpgs.push_back(read_tpg(tree.open_dir(tdir + "/" + tpg_dir), tag, std::nullopt, depth));
        }
        state.iscsi_targets.push_back(std::move(target));
    }
    index_lio(state);
    return state;
}

void index_lio(LioState& state) {
    state.target_index.clear();
    state.storage_object_index.clear();
    for (std::size_t i = 0; i < state.iscsi_targets.size(); ++i)
        state.target_index.emplace(state.iscsi_targets[i].iqn, i);
    for (std::size_t i = 0; i < state.storage_objects.size(); ++i) {
        const auto& so = state.storage_objects[i];
        state.storage_object_index.emplace(so.hba + "/" + so.name, i);
    }
}

// Through the index when it describes the vectors (observe_lio builds it;
// a state assembled or changed by hand, as in tests, is searched in full).
const StorageObjectState* find_storage_object(const LioState& state, const std::string& hba, const std::string& name) {
    if (state.storage_object_index.size() == state.storage_objects.size()) {
        auto it = state.storage_object_index.find(hba + "/" + name);
        if (it == state.storage_object_index.end()) return nullptr;
        const auto& so = state.storage_objects[it->second];
        if (so.hba == hba && so.name == name) return &so;
    }
    for (const auto& so : state.storage_objects)
        if (so.hba == hba && so.name == name) return &so;
    return nullptr;
}

std::vector<std::string> logged_in_initiators(const ConfigfsTree& tree, const std::string& iqn) {
    std::vector<std::string> out;
    const std::filesystem::path target = std::filesystem::path("iscsi") / iqn;
    for (const auto& tpg : tree.list_dirs(target)) {
        if (tpg.rfind("tpgt_", 0) != 0) continue;
        for (const auto& acl : tree.list_dirs(target / tpg / "acls")) {
            auto info = tree.read_attr(target / tpg / "acls" / acl / "info");
            if (!info || info->rfind("No active iSCSI Session", 0) != 0) out.push_back(acl);
        }
        if (auto dynamic = tree.read_attr(target / tpg / "dynamic_sessions")) {
            std::size_t start = 0;
            while (start < dynamic->size()) {
                auto end = dynamic->find('\n', start);
                if (end == std::string::npos) end = dynamic->size();
                std::string name = dynamic->substr(start, end - start);
                while (!name.empty() && (name.back() == ' ' || name.back() == '\0')) name.pop_back();
                if (!name.empty()) out.push_back(name);
                start = end + 1;
            }
        }
    }
    return out;
}

const TargetState* find_target(const LioState& state, const std::string& iqn) {
    if (state.target_index.size() == state.iscsi_targets.size()) {
        auto it = state.target_index.find(iqn);
        if (it == state.target_index.end()) return nullptr;
        if (state.iscsi_targets[it->second].iqn == iqn) return &state.iscsi_targets[it->second];
    }
    for (const auto& t : state.iscsi_targets)
        if (t.iqn == iqn) return &t;
    return nullptr;
}

bool has_hba(const LioState& state, const std::string& hba) {
    // The HBA directory stays when its last storage object goes (a volume
    // deleted, a rollback's export taken down), so the listing counts too.
    if (std::find(state.hbas.begin(), state.hbas.end(), hba) != state.hbas.end()) return true;
    if (state.storage_object_index.size() == state.storage_objects.size()) {
        auto it = state.storage_object_index.lower_bound(hba + "/");
        return it != state.storage_object_index.end() && it->first.compare(0, hba.size() + 1, hba + "/") == 0;
    }
    return std::any_of(state.storage_objects.begin(), state.storage_objects.end(),
                       [&](const StorageObjectState& s) { return s.hba == hba; });
}

}  // namespace sanagent::configfs
