// The replication stage of a primary without a peer. Nothing tracks its
// writes: doing that per write (as for an absent peer) would cost a volume
// that may never have a peer its activity-log and bitmap I/O. Instead the
// first write, trim or zero of a run marks the whole volume dirty and starts
// a new generation, once and durably, before that op is applied. A peer that
// connects later (after a restart with `peer`, or a promotion) then gets a
// resync of everything instead of being taken as equal because the
// generations did not move; a peer that moved on meanwhile is a split brain,
// as with any primary.
#pragma once

#include <atomic>
#include <mutex>

#include "sanagent/replicator/metadata.h"
#include "sanagent/replicator/volume.h"

namespace sanagent::replicator {

class Standalone final : public Replication {
public:
    explicit Standalone(MetadataFile& meta) : meta_(meta) {}
    Status replicate(const Op& op, std::function<void(int error)> done) override;

private:
    MetadataFile& meta_;
    std::mutex mu_;
    std::atomic<bool> marked_{false};
};

}  // namespace sanagent::replicator
