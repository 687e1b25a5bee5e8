// The peer fuzzer's committed seeds are what replicator_peer_seeds.h makes
// now: a protocol change that leaves them stale (a HELLO of an old version
// only exercises the version check) fails here with the command to rerun.
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>

#include "../../fuzz/replicator_peer_seeds.h"

BOOST_AUTO_TEST_CASE(committed_peer_fuzz_seeds_are_current) {
    const std::filesystem::path dir = std::filesystem::path(SANAGENT_FIXTURES) / "../fuzz/corpus/replicator_peer";
    const auto seeds = sanrep_fuzz::peer_seeds();
    std::size_t files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        ++files;
        BOOST_TEST(seeds.count(entry.path().filename().string()) == 1u, entry.path() << " is not generated");
    }
    BOOST_TEST(files == seeds.size());
    for (const auto& [name, bytes] : seeds) {
        std::ifstream in(dir / name, std::ios::binary);
        std::vector<std::uint8_t> have{std::istreambuf_iterator<char>(in), {}};
        BOOST_TEST((have == bytes), name << " is stale: run build/tests/replicator_peer_seeds " << dir.string());
    }
}
