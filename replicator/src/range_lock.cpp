#include "sanagent/replicator/range_lock.h"

#include <vector>

namespace sanagent::replicator {

namespace {
bool overlaps(std::uint64_t b1, std::uint64_t e1, std::uint64_t b2, std::uint64_t e2) {
    return b1 < e2 && b2 < e1;
}
}  // namespace

void RangeLock::acquire(std::uint64_t offset, std::uint64_t length, std::function<void(Ticket)> start) {
    if (auto t = take_or_queue(offset, length, start)) start(*t);
}

std::optional<RangeLock::Ticket> RangeLock::take_or_queue(std::uint64_t offset, std::uint64_t length,
                                                          std::function<void(Ticket)>& start) {
    std::lock_guard lock(mu_);
    Ticket t = next_++;
    bool free = true;
    for (const auto& e : entries_) {
        if (overlaps(e.begin, e.end, offset, offset + length)) {
            free = false;
            break;
        }
    }
    entries_.push_back(Entry{t, offset, offset + length, free, free ? nullptr : std::move(start)});
    if (free) return t;
    return std::nullopt;
}

void RangeLock::release(Ticket ticket) {
    std::vector<std::pair<std::function<void(Ticket)>, Ticket>> ready;
    {
        std::lock_guard lock(mu_);
        std::uint64_t begin = 0, end = 0;
        for (auto it = entries_.begin(); it != entries_.end(); ++it) {
            if (it->ticket == ticket) {
                begin = it->begin;
                end = it->end;
                entries_.erase(it);
                break;
            }
        }
        // A waiter may start when nothing before it in arrival order overlaps.
        // Only one that overlapped the released range can have become free:
        // whatever blocked any other is still here (a waiter started since
        // blocks as it did waiting), so a release costs one pass, not one
        // pass per waiter over everything before it.
        for (auto it = entries_.begin(); it != entries_.end(); ++it) {
            if (it->running || !overlaps(it->begin, it->end, begin, end)) continue;
            bool blocked = false;
            for (auto before = entries_.begin(); before != it; ++before) {
                if (overlaps(before->begin, before->end, it->begin, it->end)) {
                    blocked = true;
                    break;
                }
            }
            if (!blocked) {
                it->running = true;
                ready.emplace_back(std::move(it->start), it->ticket);
            }
        }
    }
    for (auto& [f, t] : ready) f(t);
}

std::size_t RangeLock::size() const {
    std::lock_guard lock(mu_);
    return entries_.size();
}

}  // namespace sanagent::replicator
