#include "sanagent/lvm/probe.h"

#include <blkid/blkid.h>

#include <memory>

namespace sanagent::lvm {

namespace {

struct ProbeCloser {
    void operator()(blkid_struct_probe* p) const { blkid_free_probe(p); }
};
using Probe = std::unique_ptr<blkid_struct_probe, ProbeCloser>;

std::string value_of(blkid_probe pr, const char* name) {
    const char* data = nullptr;
    size_t len = 0;
    if (blkid_probe_lookup_value(pr, name, &data, &len) != 0 || !data) return {};
    return std::string(data, len && data[len - 1] == '\0' ? len - 1 : len);
}

}  // namespace

Result<std::vector<DeviceSignature>> probe_signatures(const std::string& device) {
    Probe pr(blkid_new_probe_from_filename(device.c_str()));
    if (!pr) return last_errno("probing " + device + " for signatures: open");
    blkid_probe_enable_superblocks(pr.get(), 1);
    blkid_probe_set_superblocks_flags(pr.get(), BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE | BLKID_SUBLKS_LABEL);
    blkid_probe_enable_partitions(pr.get(), 1);
    blkid_probe_set_partitions_flags(pr.get(), BLKID_PARTS_MAGIC);

    std::vector<DeviceSignature> found;
    // blkid_do_probe steps through every signature, not just the first one
    // (a stale PV label under a new file system still counts).
    for (int guard = 0; guard < 64; ++guard) {
        int r = blkid_do_probe(pr.get());
        if (r == 1) break;
        if (r < 0) return Error{EIO, "probing " + device + " for signatures: libblkid failed"};
        DeviceSignature sig;
        sig.type = value_of(pr.get(), "TYPE");
        if (!sig.type.empty()) {
            sig.usage = value_of(pr.get(), "USAGE");
            sig.label = value_of(pr.get(), "LABEL");
        } else {
            sig.type = value_of(pr.get(), "PTTYPE");
            sig.usage = "partition table";
        }
        if (!sig.type.empty()) found.push_back(std::move(sig));
    }
    return found;
}

std::string describe(const std::vector<DeviceSignature>& signatures) {
    std::string s;
    for (std::size_t i = 0; i < signatures.size(); ++i) {
        if (i) s += i + 1 == signatures.size() ? " and " : ", ";
        s += signatures[i].type + (signatures[i].usage.empty() ? "" : " (" + signatures[i].usage + ")");
    }
    return s;
}

}  // namespace sanagent::lvm
