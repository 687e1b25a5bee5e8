// Decoding of the SCSI and LVM bytes a host reads from a LUN before it trusts
// it: standard INQUIRY, the unit serial number (VPD 0x80) and device
// identification (VPD 0x83) pages, READ CAPACITY(16), and the LVM2 physical
// volume label with its text metadata. Pure functions over byte spans, so the
// unit tests feed them recorded bytes and no LUN is needed.
//
// The SCSI id is the one udev's scsi_id prints and XenServer keys SRs by
// (/dev/disk/by-id/scsi-<id>): the designator type as one hex digit followed
// by the designator (hex for NAA and EUI-64, text for a T10 vendor id), chosen
// from the LUN's own designators (association 0) in the order NAA, EUI-64, T10.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sanagent/result.h"

namespace sanagent::lvm {

using Bytes = std::span<const std::uint8_t>;

struct StandardInquiry {
    unsigned device_type = 0;  // 0 = direct-access block device
    std::string vendor;        // trailing blanks trimmed
    std::string product;
    std::string revision;
};
Result<StandardInquiry> parse_standard_inquiry(Bytes data);

// VPD page 0x80: the unit serial number, trimmed.
Result<std::string> parse_unit_serial(Bytes data);

struct Designator {
    unsigned code_set = 0;     // 1 binary, 2 ASCII, 3 UTF-8
    unsigned association = 0;  // 0 the LUN, 1 the target port, 2 the target device
    unsigned type = 0;         // 1 T10 vendor id, 2 EUI-64, 3 NAA, 8 SCSI name string, ...
    std::vector<std::uint8_t> value;
};
// VPD page 0x83: every designator on the page.
Result<std::vector<Designator>> parse_device_identification(Bytes data);
// The SCSI id of the LUN from its designators, "" when it has none usable.
std::string scsi_id(const std::vector<Designator>& designators);

struct Capacity {
    std::uint64_t blocks = 0;      // last LBA + 1
    std::uint32_t block_size = 0;  // bytes
    std::uint64_t bytes() const { return blocks * block_size; }
};
// READ CAPACITY(16) parameter data.
Result<Capacity> parse_read_capacity16(Bytes data);

// REPORT LUNS parameter data: the LUN numbers (peripheral and flat addressing).
Result<std::vector<int>> parse_report_luns(Bytes data);

// An LVM2 PV label ("LABELONE" in one of the first four sectors) and where the
// first metadata area starts on the device.
struct PvLabel {
    std::string pv_uuid;  // 32 characters, without dashes
    std::uint64_t device_size = 0;
    std::uint64_t mda_offset = 0;  // bytes from the start of the device; 0 without one
    std::uint64_t mda_size = 0;
};
// nullopt when the bytes hold no PV label; an Error when they hold a broken one.
Result<std::optional<PvLabel>> parse_pv_label(Bytes first_sectors);

// The metadata area header (at PvLabel::mda_offset): where the current text
// metadata is, relative to the start of the metadata area.
struct MetadataLocation {
    std::uint64_t offset = 0;
    std::uint64_t size = 0;
};
Result<MetadataLocation> parse_mda_header(Bytes header);

// From the VG's text metadata: its name and its tags.
struct VgSummary {
    std::string name;
    std::string uuid;
    std::vector<std::string> tags;
};
Result<VgSummary> parse_vg_metadata(std::string_view text);

// The tags that mark a VG as an SR this agent made.
inline constexpr std::string_view kSrNameTag = "sr_name=";
inline constexpr std::string_view kSrUuidTag = "sr_uuid=";
inline constexpr std::string_view kVdiNameTag = "vdi_name=";
inline constexpr std::string_view kSrVgPrefix = "VG_XenStorage-";
// The value of the first tag starting with `prefix`, or "".
std::string tag_value(const std::vector<std::string>& tags, std::string_view prefix);

}  // namespace sanagent::lvm
