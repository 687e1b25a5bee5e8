// What is already on a block device, by libblkid: file systems, LVM PVs, RAID
// members, partition tables. A pool or SR is only ever made on a device where
// this finds nothing (unless the admin says force = true).
#pragma once

#include <string>
#include <vector>

#include "sanagent/result.h"

namespace sanagent::lvm {

struct DeviceSignature {
    std::string type;    // "ext4", "LVM2_member", "gpt", "dos", "xfs", ...
    std::string usage;   // "filesystem", "raid", "partition table", ...
    std::string label;   // when the signature has one
};

// Every signature libblkid recognises at the start of `device` (or a file).
Result<std::vector<DeviceSignature>> probe_signatures(const std::string& device);

// "ext4 (filesystem)", "LVM2_member (raid) and gpt (partition table)".
std::string describe(const std::vector<DeviceSignature>& signatures);

}  // namespace sanagent::lvm
