// Fixed-width integer load/store over byte pointers: NBD is big-endian on the
// wire, the peer protocol and the metadata file are little-endian.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sanagent::replicator::bytes {

template <typename T>
T load_be(const std::uint8_t* p) {
    T v = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) v = static_cast<T>((v << 8) | p[i]);
    return v;
}

template <typename T>
void store_be(std::uint8_t* p, T v) {
    for (std::size_t i = sizeof(T); i-- > 0;) {
        p[i] = static_cast<std::uint8_t>(v & 0xff);
        v = static_cast<T>(v >> 8);
    }
}

template <typename T>
T load_le(const std::uint8_t* p) {
    T v = 0;
    for (std::size_t i = sizeof(T); i-- > 0;) v = static_cast<T>((v << 8) | p[i]);
    return v;
}

template <typename T>
void store_le(std::uint8_t* p, T v) {
    for (std::size_t i = 0; i < sizeof(T); ++i) {
        p[i] = static_cast<std::uint8_t>(v & 0xff);
        v = static_cast<T>(v >> 8);
    }
}

}  // namespace sanagent::replicator::bytes
