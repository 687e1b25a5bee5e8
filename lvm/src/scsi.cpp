#include "sanagent/lvm/scsi.h"

#include <cstring>

namespace sanagent::lvm {

namespace {

std::uint64_t be(Bytes d, std::size_t at, std::size_t n) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = v << 8 | d[at + i];
    return v;
}

std::uint64_t le(Bytes d, std::size_t at, std::size_t n) {
    std::uint64_t v = 0;
    for (std::size_t i = n; i-- > 0;) v = v << 8 | d[at + i];
    return v;
}

std::string trimmed_text(Bytes d) {
    std::string s(d.begin(), d.end());
    while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
    std::size_t first = 0;
    while (first < s.size() && s[first] == ' ') ++first;
    for (auto& c : s)
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
    return s.substr(first);
}

std::string hex(const std::vector<std::uint8_t>& v) {
    static const char digits[] = "0123456789abcdef";
    std::string s;
    for (auto b : v) {
        s += digits[b >> 4];
        s += digits[b & 15];
    }
    return s;
}

Error short_data(const char* what, std::size_t got, std::size_t need) {
    return Error{EPROTO, std::string("decoding ") + what + ": " + std::to_string(got) + " bytes, expected at least " +
                             std::to_string(need)};
}

}  // namespace

Result<StandardInquiry> parse_standard_inquiry(Bytes d) {
    if (d.size() < 36) return short_data("standard INQUIRY data", d.size(), 36);
    StandardInquiry inq;
    inq.device_type = d[0] & 0x1f;
    inq.vendor = trimmed_text(d.subspan(8, 8));
    inq.product = trimmed_text(d.subspan(16, 16));
    inq.revision = trimmed_text(d.subspan(32, 4));
    return inq;
}

Result<std::string> parse_unit_serial(Bytes d) {
    if (d.size() < 4) return short_data("VPD page 0x80", d.size(), 4);
    if (d[1] != 0x80) return Error{EPROTO, "decoding VPD page 0x80: the page code is " + std::to_string(d[1])};
    const std::size_t len = be(d, 2, 2);
    if (d.size() < 4 + len) return short_data("VPD page 0x80", d.size(), 4 + len);
    return trimmed_text(d.subspan(4, len));
}

Result<std::vector<Designator>> parse_device_identification(Bytes d) {
    if (d.size() < 4) return short_data("VPD page 0x83", d.size(), 4);
    if (d[1] != 0x83) return Error{EPROTO, "decoding VPD page 0x83: the page code is " + std::to_string(d[1])};
    const std::size_t end = 4 + be(d, 2, 2);
    if (d.size() < end) return short_data("VPD page 0x83", d.size(), end);
    std::vector<Designator> out;
    for (std::size_t at = 4; at < end;) {
        if (at + 4 > end) return Error{EPROTO, "decoding VPD page 0x83: a designator header runs past the page"};
        const std::size_t len = d[at + 3];
        if (at + 4 + len > end) return Error{EPROTO, "decoding VPD page 0x83: a designator runs past the page"};
        Designator des;
        des.code_set = d[at] & 0x0f;
        des.association = (d[at + 1] >> 4) & 0x03;
        des.type = d[at + 1] & 0x0f;
        des.value.assign(d.begin() + static_cast<std::ptrdiff_t>(at + 4),
                         d.begin() + static_cast<std::ptrdiff_t>(at + 4 + len));
        out.push_back(std::move(des));
        at += 4 + len;
    }
    return out;
}

std::string scsi_id(const std::vector<Designator>& designators) {
    for (unsigned type : {3u, 2u, 1u}) {
        for (const auto& d : designators) {
            if (d.association != 0 || d.type != type || d.value.empty()) continue;
            if (type == 1) {
                std::string text = trimmed_text(Bytes(d.value));
                std::string collapsed;
                for (char c : text)
                    if (c != ' ' || (!collapsed.empty() && collapsed.back() != '_')) collapsed += c == ' ' ? '_' : c;
                return "1" + collapsed;
            }
            return std::to_string(type) + hex(d.value);
        }
    }
    return {};
}

Result<Capacity> parse_read_capacity16(Bytes d) {
    if (d.size() < 12) return short_data("READ CAPACITY(16) data", d.size(), 12);
    Capacity c;
    c.blocks = be(d, 0, 8) + 1;
    c.block_size = static_cast<std::uint32_t>(be(d, 8, 4));
    if (c.block_size == 0 || c.block_size % 512 != 0)
        return Error{EPROTO, "decoding READ CAPACITY(16) data: block size " + std::to_string(c.block_size)};
    return c;
}

Result<std::vector<int>> parse_report_luns(Bytes d) {
    if (d.size() < 8) return short_data("REPORT LUNS data", d.size(), 8);
    const std::size_t len = be(d, 0, 4);
    std::vector<int> luns;
    for (std::size_t at = 8; at + 8 <= 8 + len && at + 8 <= d.size(); at += 8)
        luns.push_back(static_cast<int>((d[at] & 0x3f) << 8 | d[at + 1]));
    return luns;
}

Result<std::optional<PvLabel>> parse_pv_label(Bytes d) {
    for (std::size_t sector = 0; sector < 4 && (sector + 1) * 512 <= d.size(); ++sector) {
        const std::size_t at = sector * 512;
        if (std::memcmp(d.data() + at, "LABELONE", 8) != 0) continue;
        if (std::memcmp(d.data() + at + 24, "LVM2 001", 8) != 0) return std::optional<PvLabel>{};
        const std::size_t header = at + le(d, at + 20, 4);
        // pv_header: uuid[32], device size, then data areas and metadata areas,
        // each list of {offset, size} ended by a zero entry.
        if (header + 40 > at + 512) return Error{EPROTO, "decoding the LVM label: the PV header is out of bounds"};
        PvLabel label;
        label.pv_uuid = trimmed_text(d.subspan(header, 32));
        label.device_size = le(d, header + 32, 8);
        std::size_t p = header + 40;
        auto next = [&](std::uint64_t& offset, std::uint64_t& size) {
            if (p + 16 > at + 512) return false;
            offset = le(d, p, 8);
            size = le(d, p + 8, 8);
            p += 16;
            return offset != 0;
        };
        std::uint64_t offset = 0, size = 0;
        while (next(offset, size)) {
        }
        if (next(offset, size)) {
            label.mda_offset = offset;
            label.mda_size = size;
        }
        return std::optional<PvLabel>(std::move(label));
    }
    return std::optional<PvLabel>{};
}

Result<MetadataLocation> parse_mda_header(Bytes d) {
    if (d.size() < 64) return short_data("the LVM metadata area header", d.size(), 64);
    if (std::memcmp(d.data() + 4, " LVM2 x[5A%r0N*>", 16) != 0)
        return Error{EPROTO, "decoding the LVM metadata area header: bad magic"};
    MetadataLocation loc{le(d, 40, 8), le(d, 48, 8)};
    if (loc.size == 0) return Error{ENODATA, "decoding the LVM metadata area header: no metadata written"};
    return loc;
}

Result<VgSummary> parse_vg_metadata(std::string_view text) {
    VgSummary vg;
    const auto brace = text.find(" {");
    if (brace == std::string_view::npos || brace == 0 || brace > 128)
        return Error{EPROTO, "decoding LVM text metadata: no volume group name"};
    vg.name = std::string(text.substr(0, brace));
    // Only the VG's own keys, before its first nested section.
    const auto body_end = text.find("physical_volumes {");
    const std::string_view body = text.substr(0, body_end);
    if (auto id = body.find("id = \""); id != std::string_view::npos) {
        auto end = body.find('"', id + 6);
        if (end != std::string_view::npos) vg.uuid = std::string(body.substr(id + 6, end - id - 6));
    }
    if (auto tags = body.find("tags = ["); tags != std::string_view::npos) {
        auto end = body.find(']', tags);
        if (end == std::string_view::npos) return Error{EPROTO, "decoding LVM text metadata: unterminated tags"};
        std::string_view list = body.substr(tags + 8, end - tags - 8);
        for (auto q = list.find('"'); q != std::string_view::npos; q = list.find('"', q)) {
            auto close = list.find('"', q + 1);
            if (close == std::string_view::npos) break;
            vg.tags.emplace_back(list.substr(q + 1, close - q - 1));
            q = close + 1;
        }
    }
    return vg;
}

std::string tag_value(const std::vector<std::string>& tags, std::string_view prefix) {
    for (const auto& t : tags)
        if (t.starts_with(prefix)) return t.substr(prefix.size());
    return {};
}

}  // namespace sanagent::lvm
