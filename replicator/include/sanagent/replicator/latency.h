// How long requests take, as a histogram of power-of-two microsecond buckets:
// lock-free to record from any thread (one relaxed increment), small enough to
// keep per volume and operation, and precise enough for status' p50/p99
// ("under 256 µs"), which is what an admin compares against a disk's figures.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>

namespace sanagent::replicator {

class LatencyHistogram {
public:
    static constexpr std::size_t kBuckets = 32;  // bucket i: [2^i, 2^(i+1)) µs; the last takes the rest

    void record(std::chrono::steady_clock::duration d) {
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
        std::uint64_t v = us > 0 ? static_cast<std::uint64_t>(us) : 0;
        std::size_t i = v ? static_cast<std::size_t>(63 - __builtin_clzll(v)) : 0;
        buckets_[std::min(i, kBuckets - 1)].fetch_add(1, std::memory_order_relaxed);
        total_us_.fetch_add(v, std::memory_order_relaxed);
    }

    struct Summary {
        std::uint64_t count = 0;
        std::uint64_t mean_us = 0;
        std::uint64_t p50_us = 0;  // upper bound of the bucket holding the 50th percentile
        std::uint64_t p99_us = 0;
    };
    Summary summary() const {
        std::array<std::uint64_t, kBuckets> b{};
        Summary s;
        for (std::size_t i = 0; i < kBuckets; ++i) s.count += b[i] = buckets_[i].load(std::memory_order_relaxed);
        if (s.count == 0) return s;
        s.mean_us = total_us_.load(std::memory_order_relaxed) / s.count;
        auto upper = [&](double q) {
            const auto want = static_cast<std::uint64_t>(q * static_cast<double>(s.count - 1)) + 1;
            std::uint64_t seen = 0;
            for (std::size_t i = 0; i < kBuckets; ++i) {
                seen += b[i];
                if (seen >= want) return std::uint64_t{2} << i;
            }
            return std::uint64_t{2} << (kBuckets - 1);
        };
        s.p50_us = upper(0.50);
        s.p99_us = upper(0.99);
        return s;
    }

private:
    std::array<std::atomic<std::uint64_t>, kBuckets> buckets_{};
    std::atomic<std::uint64_t> total_us_{0};
};

}  // namespace sanagent::replicator
