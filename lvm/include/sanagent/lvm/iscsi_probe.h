// What is behind an iSCSI portal, asked with libiscsi from user space: no
// kernel session, no /dev/sdX, nothing left logged in. SendTargets discovery
// lists the targets; for each (or the one asked for) a normal session reads
// every LUN's INQUIRY, serial (VPD 0x80), SCSI id (VPD 0x83), READ
// CAPACITY(16) and its first blocks, and libblkid says what those blocks hold:
// nothing, the PV of an SR (with the SR's name and uuid from the VG's tags),
// or another signature. This is `sanctl sr probe`, and the check an admin runs
// before giving a LUN to an SR.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "sanagent/lvm/probe.h"
#include "sanagent/result.h"

namespace sanagent::lvm {

struct ChapCredentials {
    std::string user;
    std::string secret;  // never logged, never printed
};

struct ProbeRequest {
    std::string portal;                   // "IP[:PORT]"
    std::optional<std::string> target;    // only this IQN; else every discovered target
    std::string initiator;                // our IQN (the targets' ACLs name it)
    std::optional<ChapCredentials> chap;  // for the normal sessions
    unsigned timeout_seconds = 10;        // per libiscsi call
};

struct LunContent {
    std::vector<DeviceSignature> signatures;
    std::string sr_name;  // when the LUN is an SR's PV (VG_XenStorage-*, sanagent tags)
    std::string sr_uuid;
    std::string vg;  // any VG on the PV
    std::string vg_uuid;
    // "empty", "LVM PV of SR NAME/UUID", "LVM PV of VG X", "holds ext4 (filesystem)".
    std::string describe() const;
};

struct LunReport {
    int lun = 0;
    std::string vendor, product, serial, scsi_id;
    std::uint64_t size_bytes = 0;
    std::uint32_t block_size = 0;
    LunContent content;
    std::string error;  // when this LUN could not be read
};

struct TargetReport {
    std::string iqn;
    std::vector<std::string> portals;
    std::vector<LunReport> luns;
    std::string error;  // login refused (ACL, CHAP) or the session failed
};

// Probe stage 1: SendTargets discovery only (the target IQNs and their
// portals), no normal session, nothing read.
Result<std::vector<TargetReport>> discover_targets(const ProbeRequest& request);

// Probe a portal. An Error when the portal cannot be reached or discovery
// fails; per-target and per-LUN failures are in the reports.
Result<std::vector<TargetReport>> probe_portal(const ProbeRequest& request);

// What the first blocks of a LUN of `device_size` bytes hold (`head` is at
// least 64 KiB from LBA 0); `read_at` fetches more bytes (the LVM text
// metadata) when `head` shows a PV. libblkid sees a sparse file of the LUN's
// size: some of its probers (LVM2) ignore a device smaller than they expect.
using ReadAt = std::function<Result<std::vector<std::uint8_t>>(std::uint64_t offset, std::uint64_t length)>;
Result<LunContent> classify_lun(const std::vector<std::uint8_t>& head, std::uint64_t device_size,
                                const ReadAt& read_at);

// The initiator IQN in an initiatorname.iscsi file ("InitiatorName=iqn...").
Result<std::string> read_initiator_name(const std::string& path = "/etc/iscsi/initiatorname.iscsi");

}  // namespace sanagent::lvm
