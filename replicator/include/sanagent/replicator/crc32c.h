// CRC32C (Castagnoli), the checksum of every peer message body and of the
// metadata header, computed by ISA-L (libisal) at memory speed.
#pragma once

#include <cstdint>
#include <span>

namespace sanagent::replicator {

std::uint32_t crc32c(std::span<const std::uint8_t> data, std::uint32_t seed = 0);

}  // namespace sanagent::replicator
