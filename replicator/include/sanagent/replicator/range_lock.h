// Orders writes to overlapping ranges: a write starts only when no earlier
// write (running or waiting) overlaps it, so two overlapping writes reach every
// replica in the order they arrived, and a resync copy of a region never runs
// beside an application write to it. Non-overlapping writes run in parallel.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <optional>

namespace sanagent::replicator {

class RangeLock {
public:
    using Ticket = std::uint64_t;
    // Calls `start(ticket)` (now, on this thread, or later on the thread that
    // releases the last overlapping range) once [offset, offset+length) is free.
    void acquire(std::uint64_t offset, std::uint64_t length, std::function<void(Ticket)> start);
    // The same, but when the range is free now it returns the ticket and
    // leaves `start` alone, so the caller runs the work on its own thread.
    std::optional<Ticket> take_or_queue(std::uint64_t offset, std::uint64_t length, std::function<void(Ticket)>& start);
    void release(Ticket ticket);
    std::size_t size() const;

private:
    struct Entry {
        Ticket ticket;
        std::uint64_t begin, end;
        bool running;
        std::function<void(Ticket)> start;
    };
    mutable std::mutex mu_;
    std::list<Entry> entries_;  // arrival order; bounded by the requests in flight
    Ticket next_ = 1;
};

}  // namespace sanagent::replicator
