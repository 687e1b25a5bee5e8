// CRC32C (Castagnoli), the checksum of every peer message body and of the
// metadata header: the SSE4.2 instruction where the CPU has it (memory speed,
// so checksumming 1 MiB writes costs little), a table otherwise.
#pragma once

#include <cstdint>
#include <span>

namespace sanagent::replicator {

std::uint32_t crc32c(std::span<const std::uint8_t> data, std::uint32_t seed = 0);

}  // namespace sanagent::replicator
