#include "sanagent/lvm/iscsi_probe.h"

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
#include <sys/mman.h>
#include <unistd.h>

#include <fstream>
#include <memory>

#include "sanagent/fd.h"
#include "sanagent/lvm/scsi.h"

namespace sanagent::lvm {

namespace {

// The bytes read from LBA 0: enough for every signature libblkid looks for
// near the start (LVM label in sector 1, ext4 at 1 KiB, btrfs at 64 KiB).
constexpr std::uint32_t kHeadBytes = 256 * 1024;
// LVM text metadata of an SR is a few KiB; a corrupt header must not make us
// read the whole metadata area.
constexpr std::uint64_t kMaxMetadataBytes = 1024 * 1024;

// One libiscsi context: sole owner, destroyed (and so disconnected) once.
class IscsiContext {
public:
    explicit IscsiContext(const std::string& initiator) : ctx_(iscsi_create_context(initiator.c_str())) {}
    IscsiContext(const IscsiContext&) = delete;
    IscsiContext& operator=(const IscsiContext&) = delete;
    IscsiContext(IscsiContext&& other) noexcept : ctx_(std::exchange(other.ctx_, nullptr)) {}
    ~IscsiContext() {
        if (ctx_) iscsi_destroy_context(ctx_);
    }
    iscsi_context* get() const { return ctx_; }
    explicit operator bool() const { return ctx_ != nullptr; }
    std::string error() const {
        const char* e = ctx_ ? iscsi_get_error(ctx_) : nullptr;
        return e && *e ? e : "unknown libiscsi error";
    }

private:
    iscsi_context* ctx_;
};

struct TaskFree {
    void operator()(scsi_task* t) const { scsi_free_scsi_task(t); }
};
using Task = std::unique_ptr<scsi_task, TaskFree>;

struct DiscoveryFree {
    iscsi_context* ctx;
    void operator()(iscsi_discovery_address* d) const { iscsi_free_discovery_data(ctx, d); }
};

std::string portal_with_port(const std::string& portal) {
    // "10.0.0.1" -> "10.0.0.1:3260"; "[fe80::1]:3260" and "10.0.0.1:3261" stay.
    if (portal.find(':') == std::string::npos) return portal + ":3260";
    return portal;
}

// A task's data, or an Error naming the command and the sense data.
Result<Bytes> task_data(const IscsiContext& ctx, const Task& task, const std::string& what) {
    if (!task) return Error{EIO, what + ": " + ctx.error()};
    if (task->status != SCSI_STATUS_GOOD)
        return Error{EIO, what + ": SCSI status " + std::to_string(task->status) + ", sense " +
                              scsi_sense_key_str(task->sense.key)};
    return Bytes(task->datain.data, static_cast<std::size_t>(task->datain.size));
}

Status connect(IscsiContext& ctx, const ProbeRequest& request, const std::string& what) {
    if (!ctx) return Error{ENOMEM, what + ": cannot create a libiscsi context"};
    iscsi_set_timeout(ctx.get(), static_cast<int>(request.timeout_seconds));
    iscsi_set_header_digest(ctx.get(), ISCSI_HEADER_DIGEST_NONE_CRC32C);
    const std::string portal = portal_with_port(request.portal);
    if (iscsi_connect_sync(ctx.get(), portal.c_str()) != 0)
        return Error{ECONNREFUSED,
                     what + ": cannot connect to " + portal + " (is it reachable and listening?): " + ctx.error()};
    if (iscsi_login_sync(ctx.get()) != 0) return Error{EACCES, what + ": login: " + ctx.error()};
    return {};
}

Result<std::vector<TargetReport>> discover(const ProbeRequest& request) {
    const std::string what = "discovering the targets of portal " + request.portal;
    IscsiContext ctx(request.initiator);
    if (ctx) iscsi_set_session_type(ctx.get(), ISCSI_SESSION_DISCOVERY);
    if (auto c = connect(ctx, request, what); !c) return c.error();
    std::unique_ptr<iscsi_discovery_address, DiscoveryFree> list(iscsi_discovery_sync(ctx.get()),
                                                                 DiscoveryFree{ctx.get()});
    if (!list) return Error{EIO, what + ": SendTargets: " + ctx.error()};
    std::vector<TargetReport> targets;
    for (auto* d = list.get(); d; d = d->next) {
        TargetReport t;
        t.iqn = d->target_name ? d->target_name : "";
        for (auto* p = d->portals; p; p = p->next)
            if (p->portal) {
                std::string address = p->portal;
                t.portals.push_back(address.substr(0, address.rfind(',')));  // drop ",TPGT"
            }
        targets.push_back(std::move(t));
    }
    iscsi_logout_sync(ctx.get());
    return targets;
}

// Reads through one logged-in normal session.
class LunReader {
public:
    LunReader(IscsiContext& ctx, int lun, std::uint32_t block_size) : ctx_(ctx), lun_(lun), block_(block_size) {}
    Result<std::vector<std::uint8_t>> read(std::uint64_t offset, std::uint64_t length) {
        const std::uint64_t first = offset / block_, last = (offset + length + block_ - 1) / block_;
        const auto bytes = static_cast<std::uint32_t>((last - first) * block_);
        Task task(iscsi_read16_sync(ctx_.get(), lun_, first, bytes, static_cast<int>(block_), 0, 0, 0, 0, 0));
        auto data =
            task_data(ctx_, task, "READ(16) of " + std::to_string(bytes) + " bytes at LBA " + std::to_string(first));
        if (!data) return data.error();
        const std::size_t skip = offset - first * block_;
        if (data->size() < skip + length) return Error{EIO, "READ(16): short read"};
        return std::vector<std::uint8_t>(data->begin() + static_cast<std::ptrdiff_t>(skip),
                                         data->begin() + static_cast<std::ptrdiff_t>(skip + length));
    }

private:
    IscsiContext& ctx_;
    int lun_;
    std::uint32_t block_;
};

void probe_lun(IscsiContext& ctx, LunReport& r) {
    auto fail = [&](const Error& e) { r.error = e.message; };
    Task std_inq(iscsi_inquiry_sync(ctx.get(), r.lun, 0, 0, 255));
    auto std_data = task_data(ctx, std_inq, "INQUIRY");
    if (!std_data) return fail(std_data.error());
    auto inq = parse_standard_inquiry(*std_data);
    if (!inq) return fail(inq.error());
    r.vendor = inq->vendor;
    r.product = inq->product;
    Task serial_task(iscsi_inquiry_sync(ctx.get(), r.lun, 1, 0x80, 255));
    if (auto d = task_data(ctx, serial_task, "INQUIRY VPD 0x80"))
        if (auto s = parse_unit_serial(*d)) r.serial = *s;
    Task id_task(iscsi_inquiry_sync(ctx.get(), r.lun, 1, 0x83, 1024));
    if (auto d = task_data(ctx, id_task, "INQUIRY VPD 0x83"))
        if (auto ids = parse_device_identification(*d)) r.scsi_id = scsi_id(*ids);
    if (inq->device_type != 0)
        return fail(Error{0, "not a block device (peripheral type " + std::to_string(inq->device_type) + ")"});
    Task cap_task(iscsi_readcapacity16_sync(ctx.get(), r.lun));
    auto cap_data = task_data(ctx, cap_task, "READ CAPACITY(16)");
    if (!cap_data) return fail(cap_data.error());
    auto cap = parse_read_capacity16(*cap_data);
    if (!cap) return fail(cap.error());
    r.size_bytes = cap->bytes();
    r.block_size = cap->block_size;
    LunReader reader(ctx, r.lun, cap->block_size);
    auto head = reader.read(0, std::min<std::uint64_t>(kHeadBytes, r.size_bytes));
    if (!head) return fail(head.error());
    auto content =
        classify_lun(*head, r.size_bytes, [&](std::uint64_t off, std::uint64_t len) { return reader.read(off, len); });
    if (!content) return fail(content.error());
    r.content = std::move(*content);
}

void probe_target(const ProbeRequest& request, TargetReport& t) {
    IscsiContext ctx(request.initiator);
    if (ctx) {
        iscsi_set_session_type(ctx.get(), ISCSI_SESSION_NORMAL);
        iscsi_set_targetname(ctx.get(), t.iqn.c_str());
        if (request.chap)
            iscsi_set_initiator_username_pwd(ctx.get(), request.chap->user.c_str(), request.chap->secret.c_str());
    }
    if (auto c = connect(ctx, request, "logging in to " + t.iqn + " as " + request.initiator); !c) {
        t.error = c.error().message;
        return;
    }
    Task luns_task(iscsi_reportluns_sync(ctx.get(), 0, 16384));
    std::vector<int> luns{0};
    if (auto d = task_data(ctx, luns_task, "REPORT LUNS"))
        if (auto parsed = parse_report_luns(*d); parsed && !parsed->empty()) luns = *parsed;
    for (int lun : luns) {
        LunReport r;
        r.lun = lun;
        probe_lun(ctx, r);
        t.luns.push_back(std::move(r));
    }
    iscsi_logout_sync(ctx.get());
}

}  // namespace

std::string LunContent::describe() const {
    if (!sr_uuid.empty()) return "LVM PV of SR " + sr_name + "/" + sr_uuid;
    if (!vg.empty()) return "LVM PV of VG " + vg;
    if (signatures.empty()) return "empty";
    return "holds " + lvm::describe(signatures);
}

Result<LunContent> classify_lun(const std::vector<std::uint8_t>& head, std::uint64_t device_size,
                                const ReadAt& read_at) {
    LunContent content;
    // libblkid probes files, not buffers: hand it the bytes as an anonymous file.
    UniqueFd fd(memfd_create("sanagent-lun-head", MFD_CLOEXEC));
    if (!fd.valid()) return last_errno("classifying the LUN's first blocks: memfd_create");
    for (std::size_t done = 0; done < head.size();) {
        ssize_t n = ::write(fd.get(), head.data() + done, head.size() - done);
        if (n < 0) return last_errno("classifying the LUN's first blocks: write");
        done += static_cast<std::size_t>(n);
    }
    // Holes read as zeros and take no memory, whatever the LUN's size.
    if (::ftruncate(fd.get(), static_cast<off_t>(std::max<std::uint64_t>(device_size, head.size()))) != 0)
        return last_errno("classifying the LUN's first blocks: ftruncate");
    auto sigs = probe_signatures("/proc/self/fd/" + std::to_string(fd.get()));
    if (!sigs) return sigs.error().context("classifying the LUN's first blocks");
    content.signatures = std::move(*sigs);
    bool pv = false;
    for (const auto& s : content.signatures) pv = pv || s.type == "LVM2_member";
    if (!pv) return content;
    auto label = parse_pv_label(Bytes(head.data(), std::min<std::size_t>(head.size(), 2048)));
    if (!label) return label.error();
    if (!*label || (*label)->mda_offset == 0) return content;
    auto mda = read_at((*label)->mda_offset, 512);
    if (!mda) return mda.error().context("reading the LVM metadata area header");
    auto where = parse_mda_header(*mda);
    if (!where) return content;  // a PV without VG metadata yet
    if (where->size > kMaxMetadataBytes) return Error{EPROTO, "LVM metadata larger than 1 MiB; not read"};
    auto text = read_at((*label)->mda_offset + where->offset, where->size);
    if (!text) return text.error().context("reading the LVM text metadata");
    auto vg = parse_vg_metadata(std::string_view(reinterpret_cast<const char*>(text->data()), text->size()));
    if (!vg) return vg.error();
    content.vg = vg->name;
    content.vg_uuid = vg->uuid;
    if (vg->name.starts_with(kSrVgPrefix)) {
        content.sr_uuid = tag_value(vg->tags, kSrUuidTag);
        content.sr_name = tag_value(vg->tags, kSrNameTag);
        if (content.sr_uuid.empty()) content.sr_uuid = vg->name.substr(kSrVgPrefix.size());
    }
    return content;
}

Result<std::vector<TargetReport>> probe_portal(const ProbeRequest& request) {
    auto targets = discover(request);
    if (!targets) return targets;
    std::vector<TargetReport> out;
    for (auto& t : *targets) {
        if (request.target && t.iqn != *request.target) continue;
        probe_target(request, t);
        out.push_back(std::move(t));
    }
    if (request.target && out.empty())
        return Error{ENOENT, "target " + *request.target + " is not offered by portal " + request.portal};
    return out;
}

Result<std::vector<TargetReport>> discover_targets(const ProbeRequest& request) {
    auto targets = discover(request);
    if (!targets) return targets;
    if (request.target) {
        std::erase_if(*targets, [&](const TargetReport& t) { return t.iqn != *request.target; });
        if (targets->empty())
            return Error{ENOENT, "target " + *request.target + " is not offered by portal " + request.portal};
    }
    return targets;
}

Result<std::string> read_initiator_name(const std::string& path) {
    std::ifstream in(path);
    if (!in) return last_errno("reading the initiator name from " + path);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("InitiatorName=", 0) != 0) continue;
        auto name = line.substr(14);
        while (!name.empty() && (name.back() == ' ' || name.back() == '\r')) name.pop_back();
        if (!name.empty()) return name;
    }
    return Error{ENOENT, "reading the initiator name from " + path + ": no InitiatorName= line"};
}

}  // namespace sanagent::lvm
