#include "sanagent/agent/observe.h"

#include "sanagent/agent/units.h"

#include <sys/utsname.h>

#include <cstdio>
#include <sstream>

namespace sanagent::agent {

Observation observe_machine(const ObserveOptions& options, CommandRunner& runner) {
    Observation o;
    utsname uts{};
    if (::uname(&uts) == 0) o.kernel_release = uts.release;

    if (auto sock = netlink::NetlinkSocket::open_route()) {
        if (auto links = netlink::dump_links(*sock))
            o.links = std::move(*links);
        else
            o.links_error = links.error().message;
    } else {
        o.links_error = sock.error().message;
    }

    o.lio = configfs::observe_lio(configfs::ConfigfsTree(options.target_root));

    lvm::LvmReporter reporter(runner);
    if (auto vgs = reporter.volume_groups()) {
        o.volume_groups = std::move(*vgs);
        if (auto lvs = reporter.logical_volumes())
            o.logical_volumes = std::move(*lvs);
        else
            o.lvm_error = lvs.error().message;
    } else {
        o.lvm_error = vgs.error().message;
    }
    return o;
}

nlohmann::json to_json(const Observation& o) {
    using nlohmann::json;
    json links = json::array();
    for (const auto& l : o.links)
        links.push_back({{"index", l.index}, {"name", l.name}, {"kind", l.kind}, {"mtu", l.mtu},
                         {"oper_state", l.oper_state}, {"admin_up", l.admin_up}, {"master_index", l.master_index},
                         {"alias", l.alias}, {"mac", l.mac}});
    json sos = json::array();
    for (const auto& so : o.lio.storage_objects)
        sos.push_back({{"plugin", so.plugin}, {"hba", so.hba}, {"name", so.name}, {"enabled", so.enabled},
                       {"udev_path", so.udev_path}, {"serial", so.serial}});
    json targets = json::array();
    for (const auto& t : o.lio.iscsi_targets) {
        json tpgs = json::array();
        for (const auto& tpg : t.tpgs) {
            json luns = json::array();
            for (const auto& lun : tpg.luns) luns.push_back({{"name", lun.name}, {"storage_object", lun.storage_object}});
            json acls = json::array();
            for (const auto& acl : tpg.acls) {
                json mapped = json::array();
                for (const auto& m : acl.mapped_luns) mapped.push_back({{"name", m.name}, {"lun", m.target_lun}});
                acls.push_back({{"initiator", acl.initiator_iqn}, {"mapped_luns", mapped}});
            }
            tpgs.push_back({{"tag", tpg.tag}, {"enabled", tpg.enabled}, {"portals", tpg.portals}, {"luns", luns},
                            {"acls", acls}});
        }
        targets.push_back({{"iqn", t.iqn}, {"tpgs", tpgs}});
    }
    json vgs = json::array();
    for (const auto& vg : o.volume_groups)
        vgs.push_back({{"name", vg.name}, {"size_bytes", vg.size_bytes}, {"free_bytes", vg.free_bytes},
                       {"pv_count", vg.pv_count}, {"lv_count", vg.lv_count}, {"tags", vg.tags}});
    json lvs = json::array();
    for (const auto& lv : o.logical_volumes) {
        json j{{"vg", lv.vg}, {"name", lv.name}, {"attr", lv.attr}, {"size_bytes", lv.size_bytes},
               {"pool", lv.pool}, {"origin", lv.origin}, {"tags", lv.tags}};
        if (lv.data_percent) j["data_percent"] = *lv.data_percent;
        if (lv.metadata_percent) j["metadata_percent"] = *lv.metadata_percent;
        lvs.push_back(std::move(j));
    }
    json result{{"kernel", o.kernel_release},
                {"links", links},
                {"lio", {{"present", o.lio.present}, {"version", o.lio.version}, {"dbroot", o.lio.dbroot},
                         {"storage_objects", sos}, {"iscsi_targets", targets}}},
                {"lvm", {{"volume_groups", vgs}, {"logical_volumes", lvs}}}};
    if (!o.links_error.empty()) result["links_error"] = o.links_error;
    if (!o.lvm_error.empty()) result["lvm"]["error"] = o.lvm_error;
    return result;
}

std::string to_text(const Observation& o) {
    std::ostringstream s;
    s << "kernel " << o.kernel_release << "\n\nnetwork links:\n";
    if (!o.links_error.empty()) s << "  (cannot read: " << o.links_error << ")\n";
    for (const auto& l : o.links) {
        s << "  " << l.name << "  " << (l.kind.empty() ? "device" : l.kind) << "  " << l.oper_state << "  mtu "
          << l.mtu;
        if (!l.mac.empty()) s << "  " << l.mac;
        if (l.master_index) s << "  master " << l.master_index;
        if (!l.alias.empty()) s << "  \"" << l.alias << "\"";
        s << "\n";
    }
    s << "\nLIO target:";
    if (!o.lio.present) {
        s << " not present (configfs not mounted or target_core_mod not loaded)\n";
    } else {
        s << " " << o.lio.version << ", dbroot " << o.lio.dbroot << "\n";
        s << "  storage objects: " << o.lio.storage_objects.size() << "\n";
        for (const auto& so : o.lio.storage_objects)
            s << "    " << so.hba << "/" << so.name << (so.enabled ? "  enabled" : "  disabled")
              << (so.udev_path.empty() ? "" : "  " + so.udev_path) << "\n";
        s << "  iSCSI targets: " << o.lio.iscsi_targets.size() << "\n";
        for (const auto& t : o.lio.iscsi_targets) {
            s << "    " << t.iqn << "\n";
            for (const auto& tpg : t.tpgs) {
                s << "      tpg " << tpg.tag << (tpg.enabled ? " enabled" : " disabled") << ", portals:";
                for (const auto& p : tpg.portals) s << " " << p;
                s << "\n";
                for (const auto& lun : tpg.luns) s << "        " << lun.name << " -> " << lun.storage_object << "\n";
                for (const auto& acl : tpg.acls) {
                    s << "        acl " << acl.initiator_iqn;
                    for (const auto& m : acl.mapped_luns) s << "  " << m.name << "->" << m.target_lun;
                    s << "\n";
                }
            }
        }
    }
    s << "\nLVM:";
    if (!o.lvm_error.empty()) {
        s << " (cannot read: " << o.lvm_error << ")\n";
    } else {
        s << " " << o.volume_groups.size() << " volume group(s), " << o.logical_volumes.size()
          << " logical volume(s)\n";
        for (const auto& vg : o.volume_groups)
            s << "  vg " << vg.name << "  " << human_size(vg.size_bytes) << ", " << human_size(vg.free_bytes)
              << " free\n";
        for (const auto& lv : o.logical_volumes) {
            s << "  lv " << lv.vg << "/" << lv.name << "  " << human_size(lv.size_bytes) << "  " << lv.attr;
            if (lv.data_percent) s << "  data " << *lv.data_percent << "%";
            if (lv.metadata_percent) s << "  metadata " << *lv.metadata_percent << "%";
            s << "\n";
        }
    }
    return s.str();
}

}  // namespace sanagent::agent
