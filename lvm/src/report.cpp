#include "sanagent/lvm/report.h"

#include <nlohmann/json.hpp>

#include <charconv>

namespace sanagent::lvm {

namespace {

using nlohmann::json;

// lvm prints every field as a string; numbers may be "" when not applicable.
std::uint64_t to_u64(const json& row, const char* key) {
    if (!row.contains(key) || !row[key].is_string()) return 0;
    const auto& s = row[key].get_ref<const std::string&>();
    std::uint64_t v = 0;
    std::from_chars(s.data(), s.data() + s.size(), v);
    return v;
}

std::optional<double> to_percent(const json& row, const char* key) {
    if (!row.contains(key) || !row[key].is_string()) return std::nullopt;
    const auto& s = row[key].get_ref<const std::string&>();
    if (s.empty()) return std::nullopt;
    try {
        return std::stod(s);
    } catch (...) {
        return std::nullopt;
    }
}

std::string to_str(const json& row, const char* key) {
    if (!row.contains(key) || !row[key].is_string()) return {};
    return row[key].get<std::string>();
}

std::vector<std::string> to_tags(const json& row, const char* key) {
    std::vector<std::string> tags;
    std::string s = to_str(row, key);
    std::size_t start = 0;
    while (start < s.size()) {
        auto comma = s.find(',', start);
        if (comma == std::string::npos) comma = s.size();
        if (comma > start) tags.push_back(s.substr(start, comma - start));
        start = comma + 1;
    }
    return tags;
}

// {"report": [ { "<section>": [ {row}, ... ] } ]}
Result<json> rows_of(std::string_view text, const char* section) {
    json doc = json::parse(text, nullptr, false);
    if (doc.is_discarded()) return Error{EBADMSG, std::string("parsing lvm ") + section + " report: not JSON"};
    if (!doc.contains("report") || !doc["report"].is_array())
        return Error{EBADMSG, std::string("parsing lvm ") + section + " report: no \"report\" array"};
    json rows = json::array();
    for (const auto& part : doc["report"]) {
        if (part.contains(section) && part[section].is_array())
            for (const auto& row : part[section]) rows.push_back(row);
    }
    return rows;
}

}  // namespace

Result<std::vector<VolumeGroupState>> parse_vgs_report(std::string_view text) {
    auto rows = rows_of(text, "vg");
    if (!rows) return rows.error();
    std::vector<VolumeGroupState> vgs;
    for (const auto& row : *rows) {
        VolumeGroupState vg;
        vg.name = to_str(row, "vg_name");
        vg.size_bytes = to_u64(row, "vg_size");
        vg.free_bytes = to_u64(row, "vg_free");
        vg.extent_size_bytes = to_u64(row, "vg_extent_size");
        vg.pv_count = static_cast<unsigned>(to_u64(row, "pv_count"));
        vg.lv_count = static_cast<unsigned>(to_u64(row, "lv_count"));
        vg.tags = to_tags(row, "vg_tags");
        vgs.push_back(std::move(vg));
    }
    return vgs;
}

Result<std::vector<LogicalVolumeState>> parse_lvs_report(std::string_view text) {
    auto rows = rows_of(text, "lv");
    if (!rows) return rows.error();
    std::vector<LogicalVolumeState> lvs;
    for (const auto& row : *rows) {
        LogicalVolumeState lv;
        lv.vg = to_str(row, "vg_name");
        lv.name = to_str(row, "lv_name");
        lv.uuid = to_str(row, "lv_uuid");
        lv.attr = to_str(row, "lv_attr");
        lv.size_bytes = to_u64(row, "lv_size");
        lv.pool = to_str(row, "pool_lv");
        lv.origin = to_str(row, "origin");
        lv.data_percent = to_percent(row, "data_percent");
        lv.metadata_percent = to_percent(row, "metadata_percent");
        lv.tags = to_tags(row, "lv_tags");
        lv.when_full = to_str(row, "lv_when_full");
        lvs.push_back(std::move(lv));
    }
    return lvs;
}

Command vgs_report_command() {
    return Command{{"lvm", "vgs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o",
                    "vg_name,vg_size,vg_free,vg_extent_size,pv_count,lv_count,vg_tags"}};
}

Command lvs_report_command() {
    return Command{{"lvm", "lvs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o",
                    "vg_name,lv_name,lv_uuid,lv_attr,lv_size,pool_lv,origin,data_percent,metadata_percent,lv_tags,lv_when_full"}};
}

Result<std::vector<VolumeGroupState>> LvmReporter::volume_groups() {
    auto cmd = vgs_report_command();
    auto out = check_exit(cmd, runner_.run(cmd));
    if (!out) return out.error().context("reading volume groups");
    return parse_vgs_report(out->out);
}

Result<std::vector<LogicalVolumeState>> LvmReporter::logical_volumes() {
    auto cmd = lvs_report_command();
    auto out = check_exit(cmd, runner_.run(cmd));
    if (!out) return out.error().context("reading logical volumes");
    return parse_lvs_report(out->out);
}

}  // namespace sanagent::lvm
