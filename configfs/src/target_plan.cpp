#include "sanagent/configfs/target_plan.h"

#include <algorithm>
#include <set>

namespace sanagent::configfs {

namespace fs = std::filesystem;
using Kind = ConfigfsOp::Kind;

std::string sanagent_hba(const std::string& plugin) { return plugin + "_" + std::to_string(kSanagentHbaIndex); }

std::string ConfigfsOp::describe() const {
    switch (kind) {
    case Kind::MakeDir:
        return "mkdir " + path.string() + (why.empty() ? "" : "  # " + why);
    case Kind::RemoveDir:
        return "rmdir " + path.string() + (why.empty() ? "" : "  # " + why);
    case Kind::Write:
        return "write " + path.string() + " = " + (secret ? std::string("(secret)") : "\"" + value + "\"") +
               (why.empty() ? "" : "  # " + why);
    case Kind::MakeLink:
        return "ln -s " + link_target.string() + " " + path.string() + (why.empty() ? "" : "  # " + why);
    case Kind::RemoveLink:
        return "unlink " + path.string() + (why.empty() ? "" : "  # " + why);
    }
    return {};
}

namespace {

constexpr const char* kTpg = "tpgt_1";
constexpr const char* kLun = "lun_0";

struct OpList {
    std::vector<ConfigfsOp> ops;
    void mkdir(fs::path p, std::string why = {}) { ops.push_back({Kind::MakeDir, std::move(p), {}, {}, false, std::move(why)}); }
    void rmdir(fs::path p, std::string why = {}) { ops.push_back({Kind::RemoveDir, std::move(p), {}, {}, false, std::move(why)}); }
    void write(fs::path p, std::string v, std::string why = {}, bool secret = false) {
        ops.push_back({Kind::Write, std::move(p), std::move(v), {}, secret, std::move(why)});
    }
    void link(fs::path target, fs::path p, std::string why = {}) {
        ops.push_back({Kind::MakeLink, std::move(p), {}, std::move(target), false, std::move(why)});
    }
    void unlink(fs::path p, std::string why = {}) { ops.push_back({Kind::RemoveLink, std::move(p), {}, {}, false, std::move(why)}); }
};

fs::path storage_dir(const StorageObjectSpec& s) { return fs::path("core") / sanagent_hba(s.plugin) / s.name; }

std::map<std::string, std::string> wanted_storage_attributes(const StorageObjectSpec& s) {
    // Thin volumes advertise UNMAP and WRITE SAME with UNMAP, so guests' discards
    // reach the thin pool and give space back.
    return {{"emulate_tpu", s.thin ? "1" : "0"}, {"emulate_tpws", s.thin ? "1" : "0"}};
}

std::map<std::string, std::string> wanted_tpg_attributes(const TargetSpec& spec) {
    bool chap = std::any_of(spec.acls.begin(), spec.acls.end(), [](const AclSpec& a) { return a.chap.has_value(); });
    // Never demo mode: only ACLs (server assignments) give access, and a
    // generated ACL would be writable by anyone who logs in. The kernel's
    // default demo_mode_discovery=1 lists every target in SendTargets to anyone
    // (iscsit_build_sendtargets_response); 0 lists only targets with an ACL for
    // the asking initiator.
    return {{"authentication", chap ? "1" : "0"},
            {"generate_node_acls", "0"},
            {"demo_mode_write_protect", "1"},
            {"demo_mode_discovery", "0"}};
}

void plan_storage_object(const StorageObjectSpec& spec, const LioState& observed, OpList& out) {
    const auto hba = sanagent_hba(spec.plugin);
    const fs::path dir = storage_dir(spec);
    const StorageObjectState* so = find_storage_object(observed, hba, spec.name);
    // The HBA directory stays when its last storage object goes (a volume
    // deleted, a rollback's export taken down); mkdir of it again is EEXIST.
    bool hba_exists = std::find(observed.hbas.begin(), observed.hbas.end(), hba) != observed.hbas.end() ||
                      std::any_of(observed.storage_objects.begin(), observed.storage_objects.end(),
                                  [&](const StorageObjectState& s) { return s.hba == hba; });
    if (!so) {
        if (!hba_exists) out.mkdir(fs::path("core") / hba, "sanagent's " + spec.plugin + " HBA");
        out.mkdir(dir, "storage object for " + spec.name);
        if (spec.plugin == "fileio") {
            out.write(dir / "control",
                      "fd_dev_name=" + spec.device + ",fd_dev_size=" + std::to_string(spec.size_bytes),
                      "backing file");
        } else {
            out.write(dir / "control", "udev_path=" + spec.device, "backing device");
        }
        out.write(dir / "udev_path", spec.device, "device path shown to targetcli and udev");
        out.write(dir / "enable", "1", "open the backing device");
        if (!spec.serial.empty())
            out.write(dir / "wwn" / "vpd_unit_serial", spec.serial, "stable SCSI serial, set before export");
        for (const auto& [attr, value] : wanted_storage_attributes(spec)) out.write(dir / "attrib" / attr, value);
        return;
    }
    if (!spec.serial.empty() && so->serial != spec.serial)
        out.write(dir / "wwn" / "vpd_unit_serial", spec.serial, "stable SCSI serial");
    for (const auto& [attr, value] : wanted_storage_attributes(spec)) {
        auto it = so->attributes.find(attr);
        if (it == so->attributes.end() || it->second != value) out.write(dir / "attrib" / attr, value);
    }
}

// `auth` is the subdirectory holding the CHAP attributes: "auth" under an
// ACL, none under discovery_auth.
void plan_chap(const fs::path& acl_dir, const std::optional<ChapSpec>& chap, const ChapState& have, OpList& out,
               const char* auth = "auth") {
    // "NULL" is how LIO unsets a CHAP value.
    ChapState want;
    if (chap) want = {chap->userid, chap->password, chap->mutual_userid, chap->mutual_password};
    auto set = [&](const char* attr, const std::string& w, const std::string& h, bool secret) {
        if (w != h) out.write(acl_dir / auth / attr, w.empty() ? "NULL" : w, "CHAP", secret);
    };
    set("userid", want.userid, have.userid, false);
    set("password", want.password, have.password, true);
    set("userid_mutual", want.mutual_userid, have.mutual_userid, false);
    set("password_mutual", want.mutual_password, have.mutual_password, true);
}

}  // namespace

std::vector<ConfigfsOp> plan_discovery_auth(const std::optional<ChapSpec>& chap, const LioState& observed) {
    OpList out;
    const fs::path da = fs::path("iscsi") / "discovery_auth";
    const auto& have = observed.discovery_auth;
    // Credentials before enforce=1, so there is no moment where discovery is
    // enforced without a secret; enforce=0 before unsetting them.
    if (!chap && have.enforce) out.write(da / "enforce_discovery_auth", "0", "discovery open to any initiator");
    plan_chap(da, chap, have.chap, out, "");
    if (chap && !have.enforce) out.write(da / "enforce_discovery_auth", "1", "discovery needs CHAP");
    return out.ops;
}

std::vector<ConfigfsOp> plan_target(const TargetSpec& spec, const LioState& observed) {
    OpList out;
    plan_storage_object(spec.storage, observed, out);

    const fs::path tdir = fs::path("iscsi") / spec.iqn;
    const fs::path tpg = tdir / kTpg;
    const fs::path lun = tpg / "lun" / kLun;
    const TargetState* target = find_target(observed, spec.iqn);
    const TpgState* have = nullptr;
    if (target)
        for (const auto& t : target->tpgs)
            if (t.tag == 1) have = &t;

    // The iscsi fabric group appears on its first mkdir, which makes the kernel
    // register (and if need be load) iscsi_target_mod.
    if (!observed.iscsi_fabric) out.mkdir("iscsi", "register the iSCSI fabric");
    if (!target) out.mkdir(tdir, "iSCSI target");
    if (!have) out.mkdir(tpg, "target portal group 1");

    for (const auto& [attr, value] : wanted_tpg_attributes(spec)) {
        std::string current;
        if (have) {
            auto it = have->attributes.find(attr);
            if (it != have->attributes.end()) current = it->second;
        }
        if (current != value) out.write(tpg / "attrib" / attr, value);
    }

    const std::string so_ref = sanagent_hba(spec.storage.plugin) + "/" + spec.storage.name;
    const LunState* have_lun = nullptr;
    if (have)
        for (const auto& l : have->luns)
            if (l.name == kLun) have_lun = &l;
    if (!have_lun) {
        out.mkdir(lun, "LUN 0");
        out.link(storage_dir(spec.storage), lun / spec.storage.name, "LUN 0 is the volume");
    }

    std::set<std::string> want_portals(spec.portals.begin(), spec.portals.end());
    std::set<std::string> have_portals;
    if (have) have_portals.insert(have->portals.begin(), have->portals.end());
    for (const auto& p : have_portals)
        if (!want_portals.count(p)) out.rmdir(tpg / "np" / p, "portal no longer configured");
    for (const auto& p : want_portals)
        if (!have_portals.count(p)) out.mkdir(tpg / "np" / p, "portal");

    std::map<std::string, const AclState*> have_acls;
    if (have)
        for (const auto& a : have->acls) have_acls[a.initiator_iqn] = &a;
    std::set<std::string> want_acls;
    for (const auto& acl : spec.acls) want_acls.insert(acl.initiator_iqn);
    for (const auto& [iqn, acl] : have_acls) {
        if (want_acls.count(iqn)) continue;
        const fs::path acl_dir = tpg / "acls" / iqn;
        for (const auto& m : acl->mapped_luns) {
            if (!m.link_name.empty()) out.unlink(acl_dir / m.name / m.link_name, "server no longer assigned");
            out.rmdir(acl_dir / m.name);
        }
        out.rmdir(acl_dir, "server " + iqn + " no longer assigned");
    }
    for (const auto& acl : spec.acls) {
        const fs::path acl_dir = tpg / "acls" / acl.initiator_iqn;
        auto it = have_acls.find(acl.initiator_iqn);
        if (it == have_acls.end()) {
            out.mkdir(acl_dir, "ACL for server " + acl.initiator_iqn);
            out.mkdir(acl_dir / kLun);
            out.link(lun, acl_dir / kLun / "map", "server sees LUN 0");
            plan_chap(acl_dir, acl.chap, ChapState{}, out);
        } else {
            bool mapped = std::any_of(it->second->mapped_luns.begin(), it->second->mapped_luns.end(),
                                      [](const MappedLunState& m) { return m.name == kLun; });
            if (!mapped) {
                out.mkdir(acl_dir / kLun);
                out.link(lun, acl_dir / kLun / "map", "server sees LUN 0");
            }
            plan_chap(acl_dir, acl.chap, it->second->chap, out);
        }
    }

    if (!have || !have->enabled) out.write(tpg / "enable", "1", "enable the TPG last");
    return out.ops;
}

std::vector<ConfigfsOp> plan_remove_target(const std::string& iqn, const StorageObjectSpec& storage,
                                           const LioState& observed) {
    OpList out;
    const fs::path tdir = fs::path("iscsi") / iqn;
    if (const TargetState* target = find_target(observed, iqn)) {
        for (const auto& tpg : target->tpgs) {
            const fs::path tpg_dir = tdir / ("tpgt_" + std::to_string(tpg.tag));
            if (tpg.enabled) out.write(tpg_dir / "enable", "0", "stop new logins first");
            for (const auto& acl : tpg.acls) {
                for (const auto& m : acl.mapped_luns) {
                    if (!m.link_name.empty()) out.unlink(tpg_dir / "acls" / acl.initiator_iqn / m.name / m.link_name);
                    out.rmdir(tpg_dir / "acls" / acl.initiator_iqn / m.name);
                }
                out.rmdir(tpg_dir / "acls" / acl.initiator_iqn);
            }
            for (const auto& l : tpg.luns) {
                if (!l.link_name.empty()) out.unlink(tpg_dir / "lun" / l.name / l.link_name);
                out.rmdir(tpg_dir / "lun" / l.name);
            }
            for (const auto& p : tpg.portals) out.rmdir(tpg_dir / "np" / p);
            out.rmdir(tpg_dir);
        }
        out.rmdir(tdir);
    }
    if (find_storage_object(observed, sanagent_hba(storage.plugin), storage.name))
        out.rmdir(storage_dir(storage), "storage object (the data on the device stays)");
    return out.ops;
}

Status apply_ops(ConfigfsTree& tree, const std::vector<ConfigfsOp>& ops, const std::string& object) {
    std::vector<const ConfigfsOp*> done;
    for (const auto& op : ops) {
        Status st;
        switch (op.kind) {
        case Kind::MakeDir:
            st = tree.make_dir(op.path);
            break;
        case Kind::RemoveDir:
            st = tree.remove_dir(op.path);
            break;
        case Kind::Write:
            st = tree.write_attr(op.path, op.value);
            break;
        case Kind::MakeLink:
            st = tree.make_link(op.link_target, op.path);
            break;
        case Kind::RemoveLink:
            st = tree.remove_link(op.path);
            break;
        }
        if (!st) {
            // Undo what this run created for the object, newest first, so no
            // half-built target stays behind. Writes inside removed directories
            // go with them; removals are not redone.
            for (auto it = done.rbegin(); it != done.rend(); ++it) {
                if ((*it)->kind == Kind::MakeLink) (void)tree.remove_link((*it)->path);
                if ((*it)->kind == Kind::MakeDir) (void)tree.remove_dir((*it)->path);
                if ((*it)->kind == Kind::Write && (*it)->path.filename() == "enable" && (*it)->value == "1")
                    (void)tree.write_attr((*it)->path, "0");
            }
            return st.error().context(object + ": " + op.describe());
        }
        done.push_back(&op);
    }
    return {};
}

}  // namespace sanagent::configfs
