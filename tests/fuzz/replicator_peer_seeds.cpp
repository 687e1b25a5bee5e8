// Writes the peer fuzzer's seed corpus (replicator_peer_seeds.h) into DIR:
//   build/tests/replicator_peer_seeds tests/fuzz/corpus/replicator_peer
#include "replicator_peer_seeds.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fputs("usage: replicator_peer_seeds DIR\n", stderr);
        return 2;
    }
    std::filesystem::path dir(argv[1]);
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    for (const auto& [name, bytes] : sanrep_fuzz::peer_seeds()) {
        std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        if (!out) {
            std::fprintf(stderr, "replicator_peer_seeds: writing %s failed\n", (dir / name).c_str());
            return 1;
        }
    }
    return 0;
}
