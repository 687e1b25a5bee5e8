#include "sanagent/replicator/standalone.h"

namespace sanagent::replicator {

Status Standalone::replicate(const Op& op, std::function<void(int error)> done) {
    if (op.type != OpType::Read && op.type != OpType::Flush && !marked_.load(std::memory_order_acquire)) {
        std::lock_guard lock(mu_);
        if (!marked_.load(std::memory_order_relaxed)) {
            auto size = meta_.get().size;
            if (auto st = meta_.mark_dirty(0, size); !st)
                return st.error().context("marking a standalone volume for a full resync");
            marked_.store(true, std::memory_order_release);
        }
    }
    done(0);
    return {};
}

}  // namespace sanagent::replicator
