// Generation identifiers (after DRBD's current / bitmap / history UUIDs) and
// the one decision made from them when a primary meets a peer.
//
// current: the data generation this replica holds; 0 = never synced (blank).
// bitmap:  the generation the dirty bitmap is relative to: set (to the old
//          current) at the first write after the peer went away, when a new
//          current is drawn; 0 while the peer is in sync.
// history: the two bitmap generations before that, newest first.
#pragma once

#include <cstdint>
#include <string_view>

namespace sanagent::replicator {

struct Generations {
    std::uint64_t current = 0;
    std::uint64_t bitmap = 0;
    std::uint64_t history[2] = {0, 0};
    bool operator==(const Generations&) const = default;
};

enum class SyncDecision : std::uint8_t {
    None = 0,           // same data: nothing to copy
    BitmapFromPrimary,  // the peer missed what our bitmap records: copy only that
    FullFromPrimary,    // the peer is blank or older than our bitmap covers
    PeerNewer,          // the peer wrote after we lost it: refuse, an admin picks
    SplitBrain,         // both wrote since a common generation: refuse, report both
    Unrelated,          // no generation in common: different data, refuse
};

SyncDecision decide(const Generations& primary, const Generations& peer);
std::string_view to_string(SyncDecision d);

}  // namespace sanagent::replicator
