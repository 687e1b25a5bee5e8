#include "sanagent/replicator/generations.h"

namespace sanagent::replicator {

namespace {
bool in_history(const Generations& g, std::uint64_t id) {
    return id != 0 && (g.history[0] == id || g.history[1] == id);
}
}  // namespace

SyncDecision decide(const Generations& p, const Generations& s) {
    if (p.current == 0) return SyncDecision::Unrelated;  // a blank primary has nothing to give
    if (s.current == 0) return SyncDecision::FullFromPrimary;
    if (p.current == s.current) return SyncDecision::None;
    if (p.bitmap != 0 && p.bitmap == s.current) return SyncDecision::BitmapFromPrimary;
    if (s.bitmap != 0 && s.bitmap == p.current) return SyncDecision::PeerNewer;
    // Both started a new generation from the same one: both were written
    // without the other.
    if (p.bitmap != 0 && p.bitmap == s.bitmap) return SyncDecision::SplitBrain;
    if (s.bitmap != 0 && in_history(p, s.bitmap)) return SyncDecision::SplitBrain;
    if (p.bitmap != 0 && in_history(s, p.bitmap)) return SyncDecision::SplitBrain;
    if (in_history(p, s.current)) return SyncDecision::FullFromPrimary;
    if (in_history(s, p.current)) return SyncDecision::PeerNewer;
    return SyncDecision::Unrelated;
}

std::string_view to_string(SyncDecision d) {
    switch (d) {
        case SyncDecision::None:
            return "none";
        case SyncDecision::BitmapFromPrimary:
            return "bitmap-resync";
        case SyncDecision::FullFromPrimary:
            return "full-sync";
        case SyncDecision::PeerNewer:
            return "peer-newer";
        case SyncDecision::SplitBrain:
            return "split-brain";
        case SyncDecision::Unrelated:
            return "unrelated";
    }
    return "unknown";
}

}  // namespace sanagent::replicator
