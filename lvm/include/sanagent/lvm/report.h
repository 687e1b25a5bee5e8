// LVM state as lvm2 reports it. lvm is driven as a tool (it owns locking,
// metadata and udev coordination), and its state is read only through
// `lvm ... --reportformat json --units b --nosuffix`, never by scraping text.
// One report command covers all volumes: lvm is slow to start, so it is batched.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sanagent/process.h"
#include "sanagent/result.h"

namespace sanagent::lvm {

struct VolumeGroupState {
    std::string name;
    std::uint64_t size_bytes = 0;
    std::uint64_t free_bytes = 0;
    std::uint64_t extent_size_bytes = 0;
    unsigned pv_count = 0;
    unsigned lv_count = 0;
    std::vector<std::string> tags;
};

struct LogicalVolumeState {
    std::string vg;
    std::string name;
    std::string uuid;
    std::string attr;            // lv_attr, e.g. "twi-a-tz--" for a thin pool
    std::uint64_t size_bytes = 0;
    std::string pool;            // thin pool of a thin LV
    std::string origin;          // origin of a snapshot
    std::optional<double> data_percent;      // thin pools and thin LVs
    std::optional<double> metadata_percent;  // thin pools
    std::vector<std::string> tags;
    std::string when_full;       // thin pools: "error" or "queue" (lv_when_full)

    bool is_thin_pool() const { return !attr.empty() && attr[0] == 't'; }
    bool is_thin_volume() const { return !attr.empty() && attr[0] == 'V'; }
    bool is_active() const { return attr.size() > 4 && attr[4] == 'a'; }
    bool is_open() const { return attr.size() > 5 && attr[5] == 'o'; }  // a holder has the device open
};

// Pure parsers over the JSON text of `lvm vgs` / `lvm lvs` with the fields below.
Result<std::vector<VolumeGroupState>> parse_vgs_report(std::string_view json);
Result<std::vector<LogicalVolumeState>> parse_lvs_report(std::string_view json);

// The argv of the report commands whose output the parsers read.
Command vgs_report_command();
Command lvs_report_command();

// Runs the report commands through a CommandRunner (the seam unit tests fake).
class LvmReporter {
public:
    explicit LvmReporter(CommandRunner& runner) : runner_(runner) {}
    Result<std::vector<VolumeGroupState>> volume_groups();
    Result<std::vector<LogicalVolumeState>> logical_volumes();

private:
    CommandRunner& runner_;
};

}  // namespace sanagent::lvm
