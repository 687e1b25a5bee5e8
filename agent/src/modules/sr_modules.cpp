#include "sanagent/agent/sr_modules.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "sanagent/agent/units.h"
#include "sanagent/lvm/probe.h"
#include "sanagent/lvm/scsi.h"

namespace sanagent::agent {

namespace fs = std::filesystem;

namespace {

constexpr const char* kMgtLv = "MGT";
constexpr std::uint64_t kMgtBytes = 4 * 1024 * 1024;
// The MGT key naming the host that has the SR attached (see held_here).
constexpr const char* kHolderKey = "attached_host";
// Tags of a VDI made from another by `sanctl vdi snapshot|clone`: the origin's name.
constexpr std::string_view kSnapshotOfTag = "snapshot_of=";
constexpr std::string_view kCloneOfTag = "clone_of=";

Result<LvmView> read_view(CommandRunner& runner) {
    lvm::LvmReporter reporter(runner);
    auto vgs = reporter.volume_groups();
    if (!vgs) return vgs.error();
    auto lvs = reporter.logical_volumes();
    if (!lvs) return lvs.error();
    return LvmView{std::move(*vgs), std::move(*lvs)};
}

bool has_tag(const std::vector<std::string>& tags, const std::string& tag) {
    return std::find(tags.begin(), tags.end(), tag) != tags.end();
}

// The SR's VG: ours (sanagent tag) and named for this SR by its tag.
const lvm::VolumeGroupState* sr_vg(const LvmView& view, const std::string& sr) {
    for (const auto& vg : view.vgs)
        if (vg.name.starts_with(lvm::kSrVgPrefix) && has_tag(vg.tags, lvm::kOwnerTag) &&
            has_tag(vg.tags, std::string(lvm::kSrNameTag) + sr))
            return &vg;
    return nullptr;
}

// The SR's name, from its VG's tag.
std::string sr_name(const lvm::VolumeGroupState& vg) {
    auto name = lvm::tag_value(vg.tags, lvm::kSrNameTag);
    return name.empty() ? vg.name : name;
}

const lvm::LogicalVolumeState* vdi_lv(const LvmView& view, const std::string& vg, const std::string& vdi) {
    for (const auto& lv : view.lvs)
        if (lv.vg == vg && lv.name.starts_with("LV-") && has_tag(lv.tags, std::string(lvm::kVdiNameTag) + vdi))
            return &lv;
    return nullptr;
}

Status run_checked(CommandRunner& runner, Command cmd, const std::string& what) {
    auto r = check_exit(cmd, runner.run(cmd));
    if (!r) return r.error().context(what);
    return {};
}

Result<std::string> new_uuid() {
    std::ifstream in("/proc/sys/kernel/random/uuid");
    std::string uuid;
    if (!(in >> uuid) || uuid.size() != 36) return Error{EIO, "generating a uuid: /proc/sys/kernel/random/uuid"};
    return uuid;
}

fs::path detached_mark(const Config& config, const std::string& sr) {
    return fs::path(config.get_string("agent", "", "state_dir")) / "sr" / (sr + ".detached");
}

lvm::NodeSettings node_settings(const SrSpec& spec, uid_t owner, Result<void>& problem) {
    lvm::NodeSettings settings;
    // With multipath a dead path must fail fast so dm-multipath moves I/O to
    // the other one; without it, ride out a storage node's restart instead
    // (XenServer's 15 s and 120 s).
    settings.replacement_timeout = std::chrono::seconds(spec.multipath ? 15 : 120);
    if (!spec.chap_secret_file.empty()) {
        auto secret = lvm::read_secret_file(spec.chap_secret_file, owner);
        if (!secret) {
            problem = secret.error();
            return settings;
        }
        settings.chap = lvm::ChapCredentials{spec.chap_user, std::move(*secret)};
    }
    return settings;
}

// The portals an SR logs in to: all of them as paths under multipath, else
// only the first (two sessions without dm-multipath would show LVM one PV twice).
std::vector<std::string> wanted_portals(const SrSpec& spec) {
    if (spec.multipath || spec.portals.empty()) return spec.portals;
    return {spec.portals.front()};
}

bool has_session(const std::vector<lvm::Session>& sessions, const std::string& target, const std::string& portal) {
    for (const auto& s : sessions)
        if (s.target == target && s.portal == portal) return true;
    return false;
}

// Discover, write the node record, log in: PBD plug's first half. Portals
// that already have a session are left as they are (a live path is never
// touched); the ones logged in to here are appended to `made`, so an undo
// logs out exactly those and never a session that carried I/O before.
Status log_in(HostSeams& seams, const SrSpec& spec, std::vector<std::string>* made = nullptr) {
    lvm::Initiator initiator(*seams.runner, seams.node_db, seams.sysfs);
    Status problem;
    auto settings = node_settings(spec, seams.secret_owner, problem);
    if (!problem) return problem.error().context("SR " + spec.name);
    auto sessions = initiator.sessions();
    if (!sessions) return sessions.error().context("SR " + spec.name);
    auto one = [&](const std::string& portal) -> Status {
        auto targets = initiator.discover(portal);
        if (!targets) return targets.error();
        if (std::find(targets->begin(), targets->end(), spec.target) == targets->end())
            return Error{ENOENT, "target " + spec.target + " is not offered by portal " + portal +
                                     " (offered: " + std::to_string(targets->size()) + " other target(s))"};
        if (auto c = initiator.configure(spec.target, portal, settings); !c) return c;
        if (auto l = initiator.login(spec.target, portal); !l) {
            (void)initiator.forget(spec.target, portal);
            return l;
        }
        if (made) made->push_back(portal);
        return {};
    };
    // Under multipath a path that is down must not keep the SR from being
    // plugged through the others: the SR needs one path; status says how many.
    std::optional<Error> first_failure;
    unsigned logged_in = 0;
    for (const auto& portal : wanted_portals(spec)) {
        if (has_session(*sessions, spec.target, portal)) {
            ++logged_in;
            continue;
        }
        if (auto st = one(portal); !st) {
            if (!spec.multipath) return st.error().context("SR " + spec.name);
            if (!first_failure) first_failure = st.error();
            continue;
        }
        ++logged_in;
    }
    if (logged_in == 0 && first_failure)
        return first_failure->context("SR " + spec.name + ": no path could be logged in to");
    return {};
}

// Log out of `portals` of the SR's target (and forget their node records).
Status log_out(HostSeams& seams, const SrSpec& spec, const std::vector<std::string>& portals, bool forget) {
    lvm::Initiator initiator(*seams.runner, seams.node_db, seams.sysfs);
    for (const auto& portal : portals) {
        if (auto s = initiator.logout(spec.target, portal); !s) return s.error().context("SR " + spec.name);
        if (forget)
            if (auto s = initiator.forget(spec.target, portal); !s) return s.error().context("SR " + spec.name);
    }
    return {};
}

// The LUN's disk after login; the SCSI disk driver attaches it asynchronously.
Result<std::string> wait_for_device(HostSeams& seams, const SrSpec& spec) {
    lvm::Initiator initiator(*seams.runner, seams.node_db, seams.sysfs);
    const auto deadline = std::chrono::steady_clock::now() + seams.device_wait;
    for (;;) {
        auto dev = initiator.lun_device(spec.target, 0);
        if (dev) return dev;
        if (std::chrono::steady_clock::now() >= deadline) return dev.error().context("SR " + spec.name);
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
}

// The SR's LUN by a stable name, never a /dev/sdX that may be another disk
// after the next boot: the multipath map of its SCSI id when multipath is in
// use (made here if multipathd has not yet: `multipath -a` whitelists the
// WWID for find_multipaths, `multipath DEV` builds the map), else udev's
// /dev/disk/by-id/scsi-<id>. Either is checked to lead to the disk found
// through the session (`disk`, "/dev/sdb").
Result<std::string> stable_device(HostSeams& seams, const SrSpec& spec, const std::string& disk,
                                  const std::string& id) {
    const std::string sd = fs::path(disk).filename().string();
    const fs::path link = spec.multipath ? seams.dev / "mapper" / id : seams.dev / "disk/by-id" / ("scsi-" + id);
    auto leads_to_disk = [&]() {
        std::error_code ec;
        auto real = fs::canonical(link, ec);
        if (ec) return false;
        if (!spec.multipath) return real.filename() == sd;
        return fs::exists(seams.sysfs / "block" / real.filename() / "slaves" / sd, ec);
    };
    if (spec.multipath && !leads_to_disk()) {
        (void)seams.runner->run(Command({"multipath", "-a", disk}));
        (void)seams.runner->run(Command({"multipath", disk}));
    }
    const auto deadline = std::chrono::steady_clock::now() + seams.device_wait;
    while (!leads_to_disk()) {
        if (std::chrono::steady_clock::now() >= deadline)
            return Error{
                ENOENT,
                "SR " + spec.name + ": " + link.string() + " does not lead to " + disk + " (SCSI id " + id + ")" +
                    (spec.multipath ? ": multipathd made no map for it (see multipath -ll)" : ": is udev running?")};
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return link.string();
}

Status write_mgt(const fs::path& device, const nlohmann::json& record) {
    std::string text = record.dump(1) + "\n";
    if (text.size() >= kMgtBytes) return Error{EFBIG, "writing the SR metadata: larger than the MGT volume"};
    text.resize(((text.size() + 4095) / 4096) * 4096, '\0');
    int fd = ::open(device.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return last_errno("writing the SR metadata to " + device.string());
    ssize_t n = ::pwrite(fd, text.data(), text.size(), 0);
    int saved = errno;
    bool synced = ::fsync(fd) == 0;
    ::close(fd);
    if (n != static_cast<ssize_t>(text.size()) || !synced)
        return errno_error(saved ? saved : EIO, "writing the SR metadata to " + device.string());
    return {};
}

Result<nlohmann::json> read_mgt(const fs::path& device) {
    std::ifstream in(device, std::ios::binary);
    if (!in) return last_errno("reading the SR metadata from " + device.string());
    std::string text(64 * 1024, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(std::min<std::size_t>(text.find('\0'), static_cast<std::size_t>(in.gcount())));
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object())
        return Error{EPROTO, "reading the SR metadata from " + device.string() + ": not JSON"};
    return j;
}

fs::path lv_path(const HostSeams& seams, const std::string& vg, const std::string& lv) {
    return seams.dev / vg / lv;
}

Status held_here(HostSeams& seams, const std::string& sr, const std::string& vg, const std::string& host);
Result<std::vector<std::string>> open_vdis(CommandRunner& runner, const std::string& vg,
                                           const std::string& only_lv = "");
Status write_holder(HostSeams& seams, const std::string& vg, const std::string& host);

// Create the SR on the LUN just logged in to, or activate it when it exists.
Status create_or_activate(HostSeams& seams, const SrSpec& spec) {
    auto view = read_view(*seams.runner);
    if (!view) return view.error().context("SR " + spec.name);
    if (const auto* vg = sr_vg(*view, spec.name)) {
        // Under multipath the map must exist before the VG is activated, or
        // LVM takes one path's disk and multipathd cannot have it.
        if (spec.multipath) {
            lvm::Initiator paths(*seams.runner, seams.node_db, seams.sysfs);
            auto disk = wait_for_device(seams, spec);
            if (!disk) return disk.error();
            auto id = paths.device_scsi_id(*disk);
            if (!id) return id.error().context("SR " + spec.name);
            if (auto map = stable_device(seams, spec, *disk, *id); !map) return map.error();
        }
        // Which host has it: read from MGT, activated alone first.
        const std::string mgt_lv = vg->name + "/" + kMgtLv;
        if (auto a = run_checked(*seams.runner, Command({"lvm", "lvchange", "--activate", "y", mgt_lv}),
                                 "SR " + spec.name + ": activating " + mgt_lv);
            !a)
            return a;
        if (auto held = held_here(seams, spec.name, vg->name, spec.host); !held && !spec.take_over) {
            // Not this host's: leave none of it active here, as the login may
            // have had LVM's udev autoactivation (pvscan -aay) activate it
            // already; an LV open here is left alone (that is a VM's disk).
            if (auto open = open_vdis(*seams.runner, vg->name); open && open->empty())
                (void)seams.runner->run(Command({"lvm", "vgchange", "--activate", "n", vg->name}));
            return held;
        }
        if (auto act = run_checked(*seams.runner, Command({"lvm", "vgchange", "--activate", "y", vg->name}),
                                   "SR " + spec.name + ": activating " + vg->name);
            !act)
            return act;
        if (auto w = write_holder(seams, vg->name, spec.host); !w)
            return w.error().context("SR " + spec.name + ": recording this host as the one that has it attached");
        return {};
    }
    auto device = wait_for_device(seams, spec);
    if (!device) return device.error();
    lvm::Initiator initiator(*seams.runner, seams.node_db, seams.sysfs);
    auto id = initiator.device_scsi_id(*device);
    if (!id) return id.error().context("SR " + spec.name);
    auto stable = stable_device(seams, spec, *device, *id);
    if (!stable) return stable.error();
    device = *stable;
    const std::string lun = "LUN 0 of " + spec.target + " (" + *device + ", SCSI id " + *id + ")";
    auto sigs = seams.probe(*device);
    if (!sigs) return sigs.error().context("SR " + spec.name + ": probing " + lun);
    if (!sigs->empty() && !spec.force)
        return Error{EEXIST, "SR " + spec.name + ": " + lun + " holds " + lvm::describe(*sigs) +
                                 "; refusing to make an SR on it (set force = true in [sr." + spec.name +
                                 "] to overwrite it)"};
    auto uuid = new_uuid();
    if (!uuid) return uuid.error();
    const std::string vg = std::string(lvm::kSrVgPrefix) + *uuid;
    std::vector<std::pair<Command, std::string>> steps;
    if (!sigs->empty())
        steps.push_back({Command({"wipefs", "--all", *device}), "wiping the old signatures off " + lun});
    steps.push_back(
        {Command({"lvm", "pvcreate", "--yes", "--metadatasize", "10M", *device}), "making " + lun + " a PV"});
    steps.push_back({Command({"lvm", "vgcreate", "--yes", "--addtag", lvm::kOwnerTag, "--addtag",
                              std::string(lvm::kSrNameTag) + spec.name, "--addtag",
                              std::string(lvm::kSrUuidTag) + *uuid, vg, *device}),
                     "creating volume group " + vg});
    steps.push_back({Command({"lvm", "lvcreate", "--yes", "--wipesignatures", "y", "-L", "4M", "-n", kMgtLv, "--addtag",
                              lvm::kOwnerTag, vg}),
                     "creating the MGT volume of " + vg});
    auto undo = [&]() {
        // Best effort: leave the LUN as it was found (blank).
        (void)seams.runner->run(Command({"lvm", "vgremove", "--yes", "--force", vg}));
        (void)seams.runner->run(Command({"lvm", "pvremove", "--yes", *device}));
    };
    for (auto& [cmd, what] : steps)
        if (auto s = run_checked(*seams.runner, cmd, "SR " + spec.name + ": " + what); !s) {
            undo();
            return s;
        }
    nlohmann::json mgt = {{"format", "sanagent-sr-1"},
                          {"sr",
                           {{"name", spec.name},
                            {"uuid", *uuid},
                            {"type", "lvmoiscsi"},
                            {"scsi_id", *id},
                            {"target", spec.target},
                            {"portals", spec.portals}}},
                          {"vdis", nlohmann::json::object()},
                          {kHolderKey, spec.host}};
    if (auto w = write_mgt(lv_path(seams, vg, kMgtLv), mgt); !w) {
        undo();
        return w.error().context("SR " + spec.name);
    }
    return {};
}

// Record (or, with a null `record`, forget) VDI `uuid` in the SR's MGT volume.
Status write_mgt_vdi(HostSeams& seams, const std::string& vg, const std::string& uuid, const nlohmann::json& record) {
    const auto path = lv_path(seams, vg, kMgtLv);
    auto mgt = read_mgt(path);
    if (!mgt) return mgt.error();
    if (record.is_null())
        (*mgt)["vdis"].erase(uuid);
    else
        (*mgt)["vdis"][uuid] = record;
    return write_mgt(path, *mgt);
}

Status update_mgt_vdi(HostSeams& seams, const std::string& vg, const std::string& uuid, const std::string& name,
                      std::uint64_t size) {
    return write_mgt_vdi(seams, vg, uuid, {{"name", name}, {"size", size}});
}

// An SR is attached to one host at a time: its MGT volume names the host
// ("attached_host") that attached it, and only that host changes the VG's
// metadata. Two hosts changing LVM metadata on one shared LUN without a lock
// manager corrupt it, and a VDI deleted here while active on another host
// leaves that host's device mapped onto freed extents.
std::string holder_of(const nlohmann::json& mgt) {
    auto it = mgt.find(kHolderKey);
    return it != mgt.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string held_elsewhere_message(const std::string& sr, const std::string& holder) {
    return "SR " + sr + " is attached on host " + holder +
           " (its MGT volume says so); an SR is attached to one host at a time: run sanctl sr detach " + sr + " on " +
           holder + " first, or, when " + holder + " is down for good, sanctl sr attach " + sr + " --force here";
}

// Refuse a metadata change of SR `sr` (VG `vg`) unless this host holds it.
Status held_here(HostSeams& seams, const std::string& sr, const std::string& vg, const std::string& host) {
    auto mgt = read_mgt(lv_path(seams, vg, kMgtLv));
    if (!mgt) return mgt.error().context("SR " + sr + ": checking which host has it attached");
    const std::string holder = holder_of(*mgt);
    if (!holder.empty() && holder != host) return Error{EBUSY, held_elsewhere_message(sr, holder)};
    return {};
}

Status write_holder(HostSeams& seams, const std::string& vg, const std::string& host) {
    const auto path = lv_path(seams, vg, kMgtLv);
    auto mgt = read_mgt(path);
    if (!mgt) return mgt.error();
    if (holder_of(*mgt) == host) return {};
    (*mgt)[kHolderKey] = host;
    return write_mgt(path, *mgt);
}

// The SR's sessions are there: one to any portal without multipath, one to
// every portal (each a path) with it.
bool session_up(const std::vector<lvm::Session>& sessions, const SrSpec& spec) {
    auto has = [&](const std::string& portal) {
        for (const auto& s : sessions)
            if (s.target == spec.target && (portal.empty() || s.portal == portal)) return true;
        return false;
    };
    if (!spec.multipath) return has("");
    for (const auto& portal : spec.portals)
        if (!has(portal)) return false;
    return true;
}

unsigned session_count(const std::vector<lvm::Session>& sessions, const SrSpec& spec) {
    unsigned n = 0;
    for (const auto& s : sessions) n += s.target == spec.target;
    return n;
}

Step failing(const std::string& object, const std::string& action, Error e) {
    Step s;
    s.object = object;
    s.action = action;
    s.apply = [e = std::move(e)]() -> Status { return e; };
    return s;
}

// An IPv4 address as a host-order number; nullopt for anything else.
std::optional<std::uint32_t> ipv4(const std::string& text) {
    in_addr a{};
    if (::inet_pton(AF_INET, text.c_str(), &a) != 1) return std::nullopt;
    return ntohl(a.s_addr);
}

// Make VDI `name` of `size` bytes in SR `sr` as LV-<new uuid>; `made` gets
// "VG/LV" once the LV exists (for an undo). Nothing when it exists already.
Status create_vdi_lv(HostSeams& seams, const std::string& sr, const std::string& name, std::uint64_t size,
                     const std::string& host, std::string& made) {
    auto view = read_view(*seams.runner);
    if (!view) return view.error().context("VDI " + name);
    const auto* group = sr_vg(*view, sr);
    if (!group)
        return Error{ENOENT, "VDI " + name + ": SR " + sr + " is not attached (no VG tagged sr_name=" + sr + ")"};
    if (vdi_lv(*view, group->name, name)) return {};
    if (auto held = held_here(seams, sr, group->name, host); !held) return held.error().context("VDI " + name);
    auto uuid = new_uuid();
    if (!uuid) return uuid.error();
    const std::string lv_name = "LV-" + *uuid;
    if (auto s = run_checked(*seams.runner,
                             Command({"lvm", "lvcreate", "--yes", "--wipesignatures", "y", "-L",
                                      std::to_string(size) + "b", "-n", lv_name, "--addtag", lvm::kOwnerTag, "--addtag",
                                      std::string(lvm::kVdiNameTag) + name, group->name}),
                             "VDI " + name + ": creating " + group->name + "/" + lv_name);
        !s)
        return s;
    made = group->name + "/" + lv_name;
    if (auto m = update_mgt_vdi(seams, group->name, *uuid, name, size); !m)
        return m.error().context("VDI " + name + ": recording it in the SR's MGT volume");
    return {};
}

// The LVs of `vg` that are open (a VM or a process holds them), as
// "LV-... (VDI name)", from `lvs -o lv_device_open`.
Result<std::vector<std::string>> open_vdis(CommandRunner& runner, const std::string& vg, const std::string& only_lv) {
    Command open_lvs({"lvm", "lvs", "--reportformat", "json", "-o", "lv_name,lv_device_open,lv_tags", vg});
    auto r = check_exit(open_lvs, runner.run(open_lvs));
    if (!r) return r.error();
    auto j = nlohmann::json::parse(r->out, nullptr, false);
    std::vector<std::string> open;
    if (j.is_discarded()) return Error{EPROTO, "reading which LVs of " + vg + " are open: lvs gave no JSON"};
    for (const auto& report : j.value("report", nlohmann::json::array()))
        for (const auto& lv : report.value("lv", nlohmann::json::array())) {
            if (lv.value("lv_device_open", "") != "open") continue;
            if (!only_lv.empty() && lv.value("lv_name", "") != only_lv) continue;
            std::string tags = lv.value("lv_tags", "");
            auto at = tags.find(lvm::kVdiNameTag);
            std::string vdi = at == std::string::npos ? std::string()
                                                      : tags.substr(at + lvm::kVdiNameTag.size(),
                                                                    tags.find(',', at) - at - lvm::kVdiNameTag.size());
            open.push_back(lv.value("lv_name", "?") + (vdi.empty() ? "" : " (VDI " + vdi + ")"));
        }
    return open;
}

// Each VG's PV device ("VG_XenStorage-..." -> "/dev/mapper/3600..."), from
// `lvm pvs`; asked only while multipathd runs.
Result<std::map<std::string, std::string>> pv_devices(CommandRunner& runner) {
    Command pvs({"lvm", "pvs", "--noheadings", "-o", "vg_name,pv_name"});
    auto r = check_exit(pvs, runner.run(pvs));
    if (!r) return r.error().context("reading which device each SR's PV is");
    std::map<std::string, std::string> out;
    std::istringstream lines(r->out);
    std::string vg, pv;
    for (std::string line; std::getline(lines, line);) {
        std::istringstream words(line);
        if (words >> vg >> pv) out[vg] = pv;
    }
    return out;
}

// Whether the SR's VG sits on a multipath map rather than one path's disk.
bool pv_is_map(const std::map<std::string, std::string>& pvs, const HostSeams& seams, const std::string& vg) {
    auto it = pvs.find(vg);
    return it != pvs.end() && it->second.starts_with((seams.dev / "mapper").string() + "/");
}

}  // namespace

std::string this_host(const Config& config) {
    std::string name = config.get_string("node", "", "name");
    if (!name.empty()) return name;
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) == 0) name = buf;
    return name.empty() ? "unknown" : name;
}

bool is_host(const Config& config) {
    auto roles = config.get_list("node", "", "roles");
    return std::find(roles.begin(), roles.end(), "host") != roles.end() ||
           std::find(roles.begin(), roles.end(), "both") != roles.end();
}

SrSpec sr_spec(const Config& config, const std::string& name) {
    SrSpec spec;
    spec.name = name;
    spec.target = config.get_string("sr", name, "target");
    spec.portals = config.get_list("sr", name, "portals");
    spec.chap_user = config.get_string("sr", name, "chap_user");
    spec.chap_secret_file = config.get_string("sr", name, "chap_secret_file");
    spec.force = config.get_bool("sr", name, "force");
    spec.host = this_host(config);
    const std::string volume = config.get_string("sr", name, "volume");
    if (!volume.empty()) {
        if (spec.target.empty()) {
            spec.target = config.get_string("volume", volume, "iqn");
            if (spec.target.empty())
                spec.target = config.get_string("group", "", "iqn_prefix") + ":" +
                              config.get_string("group", "", "name") + ":" + volume;
        }
        if (spec.portals.empty())
            for (const auto* cluster : config.objects("cluster"))
                if (const auto* nodes = config.value("cluster", cluster->name, "nodes"))
                    for (const auto& [node, address] : std::get<std::map<std::string, std::string>>(nodes->data))
                        spec.portals.push_back(address);
        // This host's own [server] entry (named like the node) carries its CHAP.
        const std::string me = config.get_string("node", "", "name");
        if (spec.chap_secret_file.empty() && !me.empty() && config.find("server", me)) {
            spec.chap_user = config.get_string("server", me, "chap_user");
            spec.chap_secret_file = config.get_string("server", me, "chap_secret_file");
        }
    }
    for (auto& p : spec.portals) p = lvm::portal_with_default_port(p);
    return spec;
}

HostSeams default_host_seams(std::shared_ptr<CommandRunner> runner) {
    HostSeams seams;
    seams.runner = std::move(runner);
    seams.probe = lvm::probe_signatures;
    return seams;
}

// ---- sr ---------------------------------------------------------------------

void SrModule::validate(const Config& config, Diagnostics& diagnostics) const {
    for (const auto* sr : config.objects("sr")) {
        auto spec = sr_spec(config, sr->name);
        const bool by_volume = config.value("sr", sr->name, "volume") != nullptr;
        if (!by_volume && !config.value("sr", sr->name, "target"))
            diagnostics.error(sr->origin, sr->id(), "target", "expected volume = \"NAME\" or target = \"IQN\"");
        else if (!lvm::is_valid_iqn(spec.target))
            diagnostics.error(sr->origin, sr->id(), "target",
                              "expected an IQN (iqn.YYYY-MM.domain[:name], lower case), got \"" +
                                  spec.target.substr(0, 80) + "\"" +
                                  (by_volume ? " (derived from [group] iqn_prefix and name)" : ""));
        if (spec.portals.empty())
            diagnostics.error(sr->origin, sr->id(), "portals",
                              "expected portals = [\"IP[:PORT]\"] (or a [cluster] with the nodes' addresses)");
        for (const auto& p : spec.portals)
            if (!lvm::is_valid_portal(p))
                diagnostics.error(sr->origin, sr->id(), "portals",
                                  "expected IPv4[:PORT], got \"" + p.substr(0, 80) + "\"");
        if (!spec.chap_secret_file.empty() && spec.chap_user.empty())
            diagnostics.error(sr->origin, sr->id(), "chap_user", "chap_secret_file needs a chap_user");
        if (spec.chap_user.find_first_of(" \t\n\r=") != std::string::npos)
            diagnostics.error(sr->origin, sr->id(), "chap_user", "expected no spaces or '='");
    }
}

Status SrModule::observe() {
    auto view = read_view(*seams_.runner);
    if (!view) return view.error();
    view_ = std::move(*view);
    lvm::Initiator initiator(*seams_.runner, seams_.node_db, seams_.sysfs);
    auto sessions = initiator.sessions();
    if (!sessions) return sessions.error();
    sessions_ = std::move(*sessions);
    multipath_ = multipath_running(*seams_.runner);
    pvs_.clear();
    if (multipath_) {
        auto pvs = pv_devices(*seams_.runner);
        if (!pvs) return pvs.error();
        pvs_ = std::move(*pvs);
    }
    return {};
}

std::vector<std::string> SrModule::desired_objects(const Config& config) const {
    std::vector<std::string> out;
    if (!is_host(config)) return out;
    for (const auto* sr : config.objects("sr")) out.push_back("sr/" + sr->name);
    return out;
}

std::vector<Step> SrModule::plan(const Config& config, const Ownership&) {
    std::vector<Step> steps;
    if (!is_host(config)) return steps;
    for (const auto* sr : config.objects("sr")) {
        const std::string object = "sr/" + sr->name;
        auto spec = sr_spec(config, sr->name);
        spec.multipath = multipath_;
        std::error_code ec;
        if (fs::exists(detached_mark(config, sr->name), ec)) continue;  // unplugged by the admin
        const auto* vg = sr_vg(view_, sr->name);
        bool any_active = false, active = vg != nullptr;
        if (vg)
            for (const auto& lv : view_.lvs)
                if (lv.vg == vg->name) {
                    any_active = any_active || lv.is_active();
                    active = active && lv.is_active();
                }
        // multipathd started under an SR already in use through one disk: the
        // VG holds /dev/sdX, which `multipath` cannot claim while it is busy,
        // so logging in to more paths would only fail (and undo). It stays a
        // single-path SR until it is detached and attached (status says so).
        if (spec.multipath && vg && any_active && !pv_is_map(pvs_, seams_, vg->name)) spec.multipath = false;
        const bool up = session_up(sessions_, spec);
        if (up && active) continue;
        auto seams = std::make_shared<HostSeams>(seams_);
        if (!up) {
            Step login;
            login.object = object;
            std::string portals;
            for (const auto& p : wanted_portals(spec)) portals += (portals.empty() ? "" : ", ") + p;
            login.action = "log in to " + spec.target + " at " + portals + " (node.startup automatic" +
                           (spec.chap_secret_file.empty() ? "" : ", CHAP") +
                           (spec.multipath ? ", multipath, replacement_timeout 15 s" : "") + ")";
            auto made = std::make_shared<std::vector<std::string>>();
            login.apply = [seams, spec, made]() { return log_in(*seams, spec, made.get()); };
            // A create that fails after this logs out of (and forgets) only the
            // sessions this step made: a path that was up before keeps the
            // running VMs' I/O whatever happens here.
            login.undo = [seams, spec, made]() { return log_out(*seams, spec, *made, true); };
            login.claims = true;
            steps.push_back(std::move(login));
        }
        // A live SR that only misses a path needs nothing more: dm-multipath
        // adds the new path to the SR's map by itself.
        if (active && session_count(sessions_, spec) > 0) continue;
        Step make;
        make.object = object;
        make.action = vg ? "activate " + vg->name
                         : "create SR " + sr->name + " on LUN 0 of " + spec.target +
                               " (PV, VG_XenStorage-<new uuid>, MGT), or activate it when it exists";
        make.apply = [seams, spec]() { return create_or_activate(*seams, spec); };
        make.claims = true;
        steps.push_back(std::move(make));
    }
    return steps;
}

std::vector<ObjectStatus> SrModule::status(const Config& config, const Ownership& owned) {
    std::vector<ObjectStatus> out;
    if (!is_host(config)) return out;
    for (const auto* sr : config.objects("sr")) {
        auto spec = sr_spec(config, sr->name);
        spec.multipath = multipath_;
        ObjectStatus s{"sr/" + sr->name, "attached, LUN 0 of " + spec.target, "", Health::ok, {}};
        const auto* vg = sr_vg(view_, sr->name);
        bool single_path = false;  // attached before multipathd ran (see plan)
        if (spec.multipath && vg && !pv_is_map(pvs_, seams_, vg->name))
            for (const auto& lv : view_.lvs) single_path = single_path || (lv.vg == vg->name && lv.is_active());
        if (single_path) spec.multipath = false;
        const unsigned paths = session_count(sessions_, spec);
        const bool up = paths > 0;
        std::error_code ec;
        const bool detached = fs::exists(detached_mark(config, sr->name), ec);
        if (!up) {
            s.actual = detached ? "detached (sanctl sr detach)" : "not logged in";
            s.health = detached ? Health::degraded : Health::failed;
            s.detail = detached ? "sanctl sr attach " + sr->name + " plugs it again" : "the next apply logs in";
        } else if (!vg) {
            s.actual = "logged in, no SR volume group";
            s.health = Health::degraded;
            s.detail = "not created yet";
        } else {
            // Snapshots are copies of a VM's disk, not disks of other VMs: not counted.
            unsigned vdis = 0, snapshots = 0;
            for (const auto& lv : view_.lvs)
                if (lv.vg == vg->name && lv.name.starts_with("LV-"))
                    ++(lvm::tag_value(lv.tags, kSnapshotOfTag).empty() ? vdis : snapshots);
            s.actual = vg->name + ", " + human_size(vg->size_bytes) + ", " + human_size(vg->free_bytes) + " free, " +
                       std::to_string(vdis) + " VDI(s)";
            if (snapshots) s.actual += ", " + std::to_string(snapshots) + " snapshot(s)";
            if (spec.multipath) s.actual += ", multipath: " + std::to_string(paths) + " path(s)";
            std::vector<std::string> warnings;
            if (spec.multipath && paths < spec.portals.size()) {
                s.health = Health::degraded;
                warnings.push_back("only " + std::to_string(paths) + " of " + std::to_string(spec.portals.size()) +
                                   " paths are logged in (the next apply tries the others again)");
            }
            if (single_path) {
                auto pv = pvs_.find(vg->name);
                warnings.push_back("multipathd runs but the SR uses one path's disk (" +
                                   (pv == pvs_.end() ? std::string("?") : pv->second) +
                                   "): it was attached before; sanctl sr detach " + sr->name + " && sanctl sr attach " +
                                   sr->name + " switches it to multipath (stop its VMs first)");
            }
            if (vdis > 1) warnings.push_back("one VDI per SR is recommended (" + std::to_string(vdis) + " here)");
            auto more = sr_config_warnings(config, spec);
            warnings.insert(warnings.end(), more.begin(), more.end());
            for (std::size_t i = 0; i < warnings.size(); ++i) s.detail += (i ? "; " : "warning: ") + warnings[i];
        }
        (void)owned;
        out.push_back(std::move(s));
    }
    return out;
}

// ---- vdi --------------------------------------------------------------------

void VdiModule::validate(const Config& config, Diagnostics& diagnostics) const {
    for (const auto* vdi : config.objects("vdi"))
        if (config.get_size("vdi", vdi->name, "size") < 4 * 1024 * 1024)
            if (const auto* v = config.value("vdi", vdi->name, "size"))
                diagnostics.error(v->origin, vdi->id(), "size", "expected at least 4M");
}

Status VdiModule::observe() {
    auto view = read_view(*seams_.runner);
    if (!view) return view.error();
    view_ = std::move(*view);
    return {};
}

std::vector<std::string> VdiModule::desired_objects(const Config& config) const {
    std::vector<std::string> out;
    if (!is_host(config)) return out;
    for (const auto* vdi : config.objects("vdi")) out.push_back("vdi/" + vdi->name);
    return out;
}

std::vector<Step> VdiModule::plan(const Config& config, const Ownership&) {
    std::vector<Step> steps;
    if (!is_host(config)) return steps;
    for (const auto* vdi : config.objects("vdi")) {
        const std::string object = "vdi/" + vdi->name;
        const std::string sr = config.get_string("vdi", vdi->name, "sr");
        const std::uint64_t size = config.get_size("vdi", vdi->name, "size");
        std::error_code ec;
        if (fs::exists(detached_mark(config, sr), ec)) continue;  // its SR is unplugged on purpose
        auto seams = std::make_shared<HostSeams>(seams_);
        const auto* vg = sr_vg(view_, sr);
        const auto* lv = vg ? vdi_lv(view_, vg->name, vdi->name) : nullptr;
        if (lv) {
            if (lv->size_bytes >= size) {
                if (lv->size_bytes > size + 4 * 1024 * 1024)
                    steps.push_back(failing(
                        object, "check the VDI's size",
                        Error{EINVAL, "VDI " + vdi->name + " is " + human_size(lv->size_bytes) + "; shrinking it to " +
                                          human_size(size) + " would lose the data past the new end: refused"}));
                continue;
            }
            Step grow;
            grow.object = object;
            grow.action = "grow VDI " + vdi->name + " (" + lv->name + ") to " + format_size(size);
            grow.apply = [seams, sr, vg = lv->vg, name = lv->name, size, host = this_host(config),
                          what = grow.action]() -> Status {
                if (auto held = held_here(*seams, sr, vg, host); !held) return held.error().context(what);
                return run_checked(*seams->runner,
                                   Command({"lvm", "lvextend", "-L", std::to_string(size) + "b", vg + "/" + name}),
                                   what);
            };
            steps.push_back(std::move(grow));
            continue;
        }
        Step create;
        create.object = object;
        create.action = "create VDI " + vdi->name + " (" + format_size(size) + ") in SR " + sr + " as LV-<new uuid>";
        auto made = std::make_shared<std::string>();  // "VG/LV", for the undo
        create.apply = [seams, sr, name = vdi->name, size, host = this_host(config), made]() -> Status {
            return create_vdi_lv(*seams, sr, name, size, host, *made);
        };
        create.undo = [seams, made]() -> Status {
            if (made->empty()) return {};
            return run_checked(*seams->runner, Command({"lvm", "lvremove", "--yes", *made}), "removing " + *made);
        };
        create.claims = true;
        steps.push_back(std::move(create));
    }
    return steps;
}

std::vector<ObjectStatus> VdiModule::status(const Config& config, const Ownership&) {
    std::vector<ObjectStatus> out;
    if (!is_host(config)) return out;
    for (const auto* vdi : config.objects("vdi")) {
        const std::string sr = config.get_string("vdi", vdi->name, "sr");
        const std::uint64_t size = config.get_size("vdi", vdi->name, "size");
        ObjectStatus s{"vdi/" + vdi->name, human_size(size) + " in SR " + sr, "absent", Health::degraded,
                       "not created yet"};
        const auto* vg = sr_vg(view_, sr);
        std::error_code ec;
        if (!vg) {
            const bool detached = fs::exists(detached_mark(config, sr), ec);
            s.actual = detached ? "SR detached" : "SR not attached";
            s.detail = detached ? "sanctl sr attach " + sr + " plugs it again" : "its SR is not attached";
        } else if (const auto* lv = vdi_lv(view_, vg->name, vdi->name)) {
            s.actual = lv->name + ", " + human_size(lv->size_bytes) + (lv->is_active() ? ", active" : ", inactive");
            s.health = lv->size_bytes >= size && lv->is_active() ? Health::ok : Health::degraded;
            s.detail = s.health == Health::ok ? "" : lv->is_active() ? "smaller than configured" : "inactive";
        }
        out.push_back(std::move(s));
    }
    return out;
}

// ---- sanctl operations ------------------------------------------------------

Status attach_sr(HostSeams& seams, const Config& config, const std::string& name, const fs::path& state_dir,
                 bool take_over) {
    if (!config.find("sr", name)) return Error{ENOENT, "attaching SR " + name + ": no [sr." + name + "] in the config"};
    auto spec = sr_spec(config, name);
    spec.take_over = take_over;
    spec.multipath = multipath_running(*seams.runner);
    if (spec.multipath) {
        // In use through one path's disk already: stays so (see SrModule::plan).
        auto view = read_view(*seams.runner);
        if (!view) return view.error().context("attaching SR " + name);
        auto pvs = pv_devices(*seams.runner);
        if (!pvs) return pvs.error().context("attaching SR " + name);
        if (const auto* vg = sr_vg(*view, name))
            for (const auto& lv : view->lvs)
                if (lv.vg == vg->name && lv.is_active() && !pv_is_map(*pvs, seams, vg->name)) spec.multipath = false;
    }
    std::vector<std::string> made;
    if (auto s = log_in(seams, spec, &made); !s) return s;
    if (auto s = create_or_activate(seams, spec); !s) {
        (void)log_out(seams, spec, made, true);  // only the sessions made here
        return s;
    }
    std::error_code ec;
    fs::remove(state_dir / "sr" / (name + ".detached"), ec);
    return {};
}

Status detach_sr(HostSeams& seams, const Config& config, const std::string& name, const fs::path& state_dir,
                 bool force) {
    if (!config.find("sr", name)) return Error{ENOENT, "detaching SR " + name + ": no [sr." + name + "] in the config"};
    auto spec = sr_spec(config, name);
    auto view = read_view(*seams.runner);
    if (!view) return view.error().context("detaching SR " + name);
    if (const auto* vg = sr_vg(*view, name)) {
        auto open = open_vdis(*seams.runner, vg->name);
        if (!open) return open.error().context("detaching SR " + name);
        if (!open->empty() && !force) {
            std::string list;
            for (const auto& o : *open) list += (list.empty() ? "" : ", ") + o;
            return Error{EBUSY, "detaching SR " + name + ": in use: " + list +
                                    " is open (a VM or a process uses it); stop it first, or --force"};
        }
        // Free the SR for another host (while MGT is still active). Best
        // effort: a record left behind only makes the other host need
        // sanctl sr attach --force.
        bool freed = false;
        if (auto mgt = read_mgt(lv_path(seams, vg->name, kMgtLv)); mgt && holder_of(*mgt) == spec.host) {
            (*mgt)[kHolderKey] = "";
            freed = write_mgt(lv_path(seams, vg->name, kMgtLv), *mgt).ok();
        }
        // The PV's device, read before deactivating: a multipath map is flushed
        // after, so no map without paths is left queueing I/O forever.
        Command pvs({"lvm", "pvs", "--noheadings", "-o", "pv_name", "--select", "vg_name=" + vg->name});
        auto pv = check_exit(pvs, seams.runner->run(pvs));
        auto deact = run_checked(*seams.runner, Command({"lvm", "vgchange", "--activate", "n", vg->name}),
                                 "detaching SR " + name + ": deactivating " + vg->name);
        if (!deact && !force) {
            if (freed) (void)write_holder(seams, vg->name, spec.host);  // still attached here
            return deact;
        }
        std::string pv_name = pv ? pv->out : "";
        pv_name.erase(0, pv_name.find_first_not_of(" \t\n"));
        pv_name.erase(pv_name.find_last_not_of(" \t\n") + 1);
        if (pv_name.starts_with((seams.dev / "mapper").string() + "/"))
            if (auto f = run_checked(*seams.runner, Command({"multipath", "-f", fs::path(pv_name).filename().string()}),
                                     "detaching SR " + name + ": flushing the multipath map " + pv_name);
                !f && !force)
                return f;
    }
    if (auto s = log_out(seams, spec, spec.portals, false); !s) return s;
    std::error_code ec;
    fs::create_directories(state_dir / "sr", ec);
    std::ofstream mark(state_dir / "sr" / (name + ".detached"));
    if (!mark) return last_errno("detaching SR " + name + ": writing the detached mark in " + state_dir.string());
    return {};
}

namespace {

// A VDI by name: in its configured SR, else in `sr_hint`, else in whichever
// SR holds one of that name (an error when several do).
struct FoundVdi {
    const lvm::VolumeGroupState* vg = nullptr;
    const lvm::LogicalVolumeState* lv = nullptr;
};
Result<FoundVdi> find_vdi(const LvmView& view, const Config& config, const std::string& name, std::string sr_hint) {
    if (config.find("vdi", name)) sr_hint = config.get_string("vdi", name, "sr");
    FoundVdi found;
    if (!sr_hint.empty()) {
        found.vg = sr_vg(view, sr_hint);
        if (!found.vg) return Error{ENOENT, "VDI " + name + ": SR " + sr_hint + " is not attached"};
        found.lv = vdi_lv(view, found.vg->name, name);
        if (!found.lv) return Error{ENOENT, "VDI " + name + ": not in SR " + sr_hint};
        return found;
    }
    for (const auto& vg : view.vgs) {
        if (!vg.name.starts_with(lvm::kSrVgPrefix) || !has_tag(vg.tags, lvm::kOwnerTag)) continue;
        if (const auto* lv = vdi_lv(view, vg.name, name)) {
            if (found.lv)
                return Error{EEXIST, "VDI " + name + ": in several SRs (" + found.vg->name + ", " + vg.name +
                                         "); name one with --sr"};
            found = {&vg, lv};
        }
    }
    if (!found.lv) return Error{ENOENT, "VDI " + name + ": in no attached SR"};
    return found;
}

std::string vdi_uuid(const lvm::LogicalVolumeState& lv) {
    return lv.name.substr(3);
}

// The VDIs made from `lv` by snapshot or clone (LVM's origin field).
std::vector<std::string> copies_of(const LvmView& view, const lvm::LogicalVolumeState& lv) {
    std::vector<std::string> out;
    for (const auto& other : view.lvs)
        if (other.vg == lv.vg && other.origin == lv.name) {
            auto name = lvm::tag_value(other.tags, lvm::kVdiNameTag);
            out.push_back(name.empty() ? other.name : name);
        }
    return out;
}

std::string joined(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
    return out;
}

}  // namespace

Result<std::string> vdi_path(HostSeams& seams, const Config& config, const std::string& name) {
    auto view = read_view(*seams.runner);
    if (!view) return view.error().context("VDI " + name);
    auto found = find_vdi(*view, config, name, "");
    if (!found) return found.error();
    if (!found->lv->is_active()) return Error{ENXIO, "VDI " + name + ": " + found->lv->name + " is not active"};
    return lv_path(seams, found->vg->name, found->lv->name).string();
}

Status create_vdi(HostSeams& seams, const Config& config, const VdiRequest& request) {
    VdiRequest r = request;
    const std::string what = "creating VDI " + r.name;
    if (!is_safe_name(r.name)) return Error{EINVAL, what + ": expected a name [a-z0-9][a-z0-9.-]*"};
    if (config.find("vdi", r.name)) {
        const std::string sr = config.get_string("vdi", r.name, "sr");
        const std::uint64_t size = config.get_size("vdi", r.name, "size");
        if ((!r.sr.empty() && r.sr != sr) || (r.size && r.size != size))
            return Error{EINVAL, what + ": [vdi." + r.name + "] in the config says SR " + sr + ", size " +
                                     format_size(size) + "; change it there, not here"};
        r.sr = sr;
        r.size = size;
    }
    if (r.sr.empty() || r.size == 0)
        return Error{EINVAL, what + ": not in the config; give its SR and size (--sr SR --size SIZE)"};
    if (r.size < 4 * 1024 * 1024) return Error{EINVAL, what + ": expected a size of at least 4M"};
    if (!config.find("sr", r.sr)) return Error{ENOENT, what + ": no [sr." + r.sr + "] in the config"};
    auto view = read_view(*seams.runner);
    if (!view) return view.error().context(what);
    if (find_vdi(*view, config, r.name, ""))
        return Error{EEXIST, what + ": a VDI of that name exists already (sanctl vdi path " + r.name + ")"};
    std::string made;
    return create_vdi_lv(seams, r.sr, r.name, r.size, this_host(config), made);
}

Status remove_vdi(HostSeams& seams, const Config& config, const VdiRequest& request) {
    const std::string what = "deleting VDI " + request.name;
    if (!request.destroy) return Error{EPERM, what + ": this destroys its data; say so with --yes-destroy-data"};
    if (config.find("vdi", request.name))
        return Error{EPERM, what + ": it is still in the config; remove its [vdi." + request.name +
                                "] first, or the next apply makes it again"};
    auto view = read_view(*seams.runner);
    if (!view) return view.error().context(what);
    auto found = find_vdi(*view, config, request.name, request.sr);
    if (!found) return found.error().context("deleting");
    if (auto copies = copies_of(*view, *found->lv); !copies.empty())
        return Error{EBUSY,
                     what + ": its snapshots or clones depend on it (" + joined(copies) + "); delete them first"};
    if (auto held = held_here(seams, sr_name(*found->vg), found->vg->name, this_host(config)); !held)
        return held.error().context(what);
    auto open = open_vdis(*seams.runner, found->vg->name, found->lv->name);
    if (!open) return open.error().context(what);
    if (!open->empty())
        return Error{EBUSY, what + ": " + found->lv->name + " is open (a VM or a process uses it); stop it first"};
    const std::string vg = found->vg->name, lv = found->lv->name;
    if (auto s = run_checked(*seams.runner, Command({"lvm", "lvremove", "--yes", vg + "/" + lv}),
                             what + ": removing " + vg + "/" + lv);
        !s)
        return s;
    if (auto m = write_mgt_vdi(seams, vg, vdi_uuid(*found->lv), nullptr); !m)
        return m.error().context(what + ": forgetting it in the SR's MGT volume");
    return {};
}

Status resize_vdi(HostSeams& seams, const Config& config, const VdiRequest& request) {
    const std::string what = "resizing VDI " + request.name;
    if (config.find("vdi", request.name))
        return Error{EPERM,
                     what + ": its size is [vdi." + request.name + "] size in the config; change it there and apply"};
    if (request.size < 4 * 1024 * 1024) return Error{EINVAL, what + ": expected a size of at least 4M"};
    auto view = read_view(*seams.runner);
    if (!view) return view.error().context(what);
    auto found = find_vdi(*view, config, request.name, request.sr);
    if (!found) return found.error().context("resizing");
    const auto& lv = *found->lv;
    if (!lv.origin.empty())
        return Error{EPERM, what + ": it is a snapshot or clone of " + lv.origin + "; LVM cannot resize it here"};
    if (auto copies = copies_of(*view, lv); !copies.empty())
        return Error{EBUSY, what + ": it has snapshots or clones (" + joined(copies) +
                                "), and LVM resizes a snapshot origin only while inactive; delete them first"};
    const std::string path = found->vg->name + "/" + lv.name;
    const std::string bytes = std::to_string(request.size) + "b";
    if (request.size == lv.size_bytes) return {};
    if (auto held = held_here(seams, sr_name(*found->vg), found->vg->name, this_host(config)); !held)
        return held.error().context(what);
    if (request.size < lv.size_bytes) {
        if (!request.force)
            return Error{EPERM,
                         what + ": shrinking it from " + human_size(lv.size_bytes) + " to " + human_size(request.size) +
                             " loses the data past the new end; refused (--force if the data there is not needed)"};
    }
    const bool shrink = request.size < lv.size_bytes;
    Command change = shrink ? Command({"lvm", "lvreduce", "--yes", "-L", bytes, path})
                            : Command({"lvm", "lvextend", "-L", bytes, path});
    if (auto s = run_checked(*seams.runner, change, what + (shrink ? ": shrinking " : ": growing ") + path); !s)
        return s;
    return write_mgt_vdi(seams, found->vg->name, vdi_uuid(lv), {{"name", request.name}, {"size", request.size}});
}

Status copy_vdi(HostSeams& seams, const Config& config, const VdiRequest& origin, const std::string& copy,
                bool writable) {
    const std::string what = std::string(writable ? "cloning" : "snapshotting") + " VDI " + origin.name + " as " + copy;
    if (!is_safe_name(copy)) return Error{EINVAL, what + ": expected a name [a-z0-9][a-z0-9.-]*"};
    auto view = read_view(*seams.runner);
    if (!view) return view.error().context(what);
    auto found = find_vdi(*view, config, origin.name, origin.sr);
    if (!found) return found.error().context(what);
    if (find_vdi(*view, config, copy, "")) return Error{EEXIST, what + ": a VDI named " + copy + " exists already"};
    const auto& lv = *found->lv;
    if (!lv.origin.empty())
        return Error{EPERM,
                     what + ": it is itself a snapshot or clone; LVM cannot snapshot a snapshot (copy its origin)"};
    if (!lv.is_active()) return Error{ENXIO, what + ": " + lv.name + " is not active (is the SR attached?)"};
    // As large as the origin: a thick snapshot that fills up is invalidated.
    if (found->vg->free_bytes < lv.size_bytes)
        return Error{ENOSPC, what + ": needs " + human_size(lv.size_bytes) + " free in SR, " + found->vg->name +
                                 " has " + human_size(found->vg->free_bytes)};
    if (auto held = held_here(seams, sr_name(*found->vg), found->vg->name, this_host(config)); !held)
        return held.error().context(what);
    auto uuid = new_uuid();
    if (!uuid) return uuid.error();
    const std::string lv_name = "LV-" + *uuid;
    if (auto s = run_checked(*seams.runner,
                             Command({"lvm", "lvcreate", "--yes", "--snapshot", "--permission", writable ? "rw" : "r",
                                      "-L", std::to_string(lv.size_bytes) + "b", "-n", lv_name, "--addtag",
                                      lvm::kOwnerTag, "--addtag", std::string(lvm::kVdiNameTag) + copy, "--addtag",
                                      std::string(writable ? kCloneOfTag : kSnapshotOfTag) + origin.name,
                                      found->vg->name + "/" + lv.name}),
                             what + ": creating " + found->vg->name + "/" + lv_name);
        !s)
        return s;
    return write_mgt_vdi(seams, found->vg->name, *uuid,
                         {{"name", copy},
                          {"size", lv.size_bytes},
                          {writable ? "clone_of" : "snapshot_of", vdi_uuid(lv)},
                          {"read_only", !writable}});
}

bool multipath_running(CommandRunner& runner) {
    // Bounded: multipathd answers at once or is not there.
    Command c({"multipathd", "show", "daemon"});
    c.timeout = std::chrono::seconds(10);
    auto r = runner.run(c);
    // "pid 1234 idle" (or running, configure); anything else is no daemon.
    return r && r->exit_code == 0 && r->out.starts_with("pid ") && r->out.find("shutdown") == std::string::npos;
}

std::vector<std::string> sr_config_warnings(const Config& config, const SrSpec& spec) {
    std::vector<std::string> warnings;
    const std::string volume = config.get_string("sr", spec.name, "volume");
    if (!volume.empty() && volume != spec.name)
        warnings.push_back("the SR's name differs from its volume's (" + volume + ")");
    // The storage network is what the config's [bond] and [link] sections
    // address (sanagent's network sections are the dedicated SAN's). A portal
    // in none of their subnets is reached through the default route: the
    // management network, shared with everything else.
    struct Subnet {
        std::uint32_t net, mask;
    };
    std::vector<Subnet> storage;
    for (const char* kind : {"bond", "link"})
        for (const auto* object : config.objects(kind))
            for (const auto& cidr : config.get_list(kind, object->name, "addresses")) {
                auto slash = cidr.find('/');
                auto ip = ipv4(cidr.substr(0, slash));
                if (!ip || slash == std::string::npos) continue;
                int bits = std::atoi(cidr.c_str() + slash + 1);
                if (bits <= 0 || bits > 32) continue;
                std::uint32_t mask = bits == 32 ? ~0u : ~((1u << (32 - bits)) - 1);
                storage.push_back({*ip & mask, mask});
            }
    std::vector<std::string> outside;
    for (const auto& portal : spec.portals) {
        const std::string host = portal.substr(0, portal.rfind(':'));
        auto ip = ipv4(host);
        if (!ip) continue;
        bool on_san = false;
        for (const auto& n : storage) on_san = on_san || (*ip & n.mask) == n.net;
        if (!on_san) outside.push_back(host);
    }
    if (!outside.empty())
        warnings.push_back("iSCSI to " + joined(outside) +
                           " is not on a dedicated storage network (no [bond] or [link] of this config has an "
                           "address in its subnet): it shares the management network");
    return warnings;
}

}  // namespace sanagent::agent
