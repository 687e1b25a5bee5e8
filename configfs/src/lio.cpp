#include "sanagent/configfs/lio.h"

#include <charconv>

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

// LIO treats the value "NULL" as "not set" (iscsi_target_configfs.c).
std::string auth_value(const ConfigfsTree& tree, const fs::path& path) {
    auto v = tree.read_attr(path).value_or("");
    return v == "NULL" ? std::string() : v;
}

}  // namespace

LioState observe_lio(const ConfigfsTree& tree, LioDepth depth) {
    LioState state;
    state.present = tree.exists("");
    if (!state.present) return state;
    state.version = tree.read_attr("version").value_or("");
    state.dbroot = tree.read_attr("dbroot").value_or("");
    state.iscsi_fabric = tree.exists("iscsi");
    if (state.iscsi_fabric && depth == LioDepth::full) {
        const fs::path da = fs::path("iscsi") / "discovery_auth";
        state.discovery_auth.enforce = tree.read_attr(da / "enforce_discovery_auth").value_or("0") == "1";
        state.discovery_auth.chap.userid = auth_value(tree, da / "userid");
        state.discovery_auth.chap.password = auth_value(tree, da / "password");
        state.discovery_auth.chap.mutual_userid = auth_value(tree, da / "userid_mutual");
        state.discovery_auth.chap.mutual_password = auth_value(tree, da / "password_mutual");
    }

    for (const auto& hba : tree.list_dirs("core")) {
        if (hba == "alua") continue;
        state.hbas.push_back(hba);
        for (const auto& name : tree.list_dirs(fs::path("core") / hba)) {
            if (name == "hba_info" || name == "hba_mode") continue;
            fs::path dir = fs::path("core") / hba / name;
            StorageObjectState so;
            so.plugin = plugin_of(hba);
            so.hba = hba;
            so.name = name;
            if (depth == LioDepth::core) {
                state.storage_objects.push_back(std::move(so));
                continue;
            }
            so.enabled = tree.read_attr(dir / "enable").value_or("0") == "1";
            so.udev_path = tree.read_attr(dir / "udev_path").value_or("");
            so.serial = strip_serial(tree.read_attr(dir / "wwn" / "vpd_unit_serial").value_or(""));
            for (const char* attr : kManagedStorageAttributes)
                if (auto v = tree.read_attr(dir / "attrib" / attr)) so.attributes[attr] = *v;
            state.storage_objects.push_back(std::move(so));
        }
    }

    if (depth == LioDepth::core) return state;
    for (const auto& iqn : tree.list_dirs("iscsi")) {
        if (iqn == "discovery_auth") continue;
        TargetState target;
        target.iqn = iqn;
        for (const auto& tpg_dir : tree.list_dirs(fs::path("iscsi") / iqn)) {
            if (tpg_dir.rfind("tpgt_", 0) != 0) continue;
            fs::path tpg_path = fs::path("iscsi") / iqn / tpg_dir;
            TpgState tpg;
            std::from_chars(tpg_dir.data() + 5, tpg_dir.data() + tpg_dir.size(), tpg.tag);
            tpg.enabled = tree.read_attr(tpg_path / "enable").value_or("0") == "1";
            for (const char* attr : kManagedTpgAttributes)
                if (auto v = tree.read_attr(tpg_path / "attrib" / attr)) tpg.attributes[attr] = *v;
            tpg.portals = tree.list_dirs(tpg_path / "np");
            for (const auto& lun_name : tree.list_dirs(tpg_path / "lun")) {
                LunState lun;
                lun.name = lun_name;
                for (const auto& link : tree.list_links(tpg_path / "lun" / lun_name)) {
                    lun.link_name = link;
                    if (auto target_path = tree.read_link(tpg_path / "lun" / lun_name / link)) {
                        // core/<hba>/<name>
                        auto it = target_path->begin();
                        if (it != target_path->end() && *it == "core" && ++it != target_path->end()) {
                            auto hba = it->string();
                            if (++it != target_path->end()) lun.storage_object = hba + "/" + it->string();
                        }
                    }
                }
                tpg.luns.push_back(std::move(lun));
            }
            for (const auto& initiator : tree.list_dirs(tpg_path / "acls")) {
                AclState acl;
                acl.initiator_iqn = initiator;
                const fs::path auth = tpg_path / "acls" / initiator / "auth";
                acl.chap.userid = auth_value(tree, auth / "userid");
                acl.chap.password = auth_value(tree, auth / "password");
                acl.chap.mutual_userid = auth_value(tree, auth / "userid_mutual");
                acl.chap.mutual_password = auth_value(tree, auth / "password_mutual");
                for (const auto& mapped : tree.list_dirs(tpg_path / "acls" / initiator)) {
                    if (mapped.rfind("lun_", 0) != 0) continue;
                    MappedLunState m;
                    m.name = mapped;
                    for (const auto& link : tree.list_links(tpg_path / "acls" / initiator / mapped)) {
                        m.link_name = link;
                        if (auto to = tree.read_link(tpg_path / "acls" / initiator / mapped / link))
                            m.target_lun = to->filename().string();
                    }
                    acl.mapped_luns.push_back(std::move(m));
                }
                tpg.acls.push_back(std::move(acl));
            }
            target.tpgs.push_back(std::move(tpg));
        }
        state.iscsi_targets.push_back(std::move(target));
    }
    return state;
}

const StorageObjectState* find_storage_object(const LioState& state, const std::string& hba, const std::string& name) {
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
    for (const auto& t : state.iscsi_targets)
        if (t.iqn == iqn) return &t;
    return nullptr;
}

}  // namespace sanagent::configfs
