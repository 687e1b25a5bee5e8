// sanrepd: the user-space block replicator (see docs/replicator.md). Only the
// wire formats exist so far; the daemon says so rather than pretend to serve.
#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
    if (argc > 1 && (std::strcmp(argv[1], "--version") == 0)) {
        std::puts("sanrepd " SANAGENT_VERSION);
        return 0;
    }
    std::fputs("sanrepd: the replicator is not implemented yet (see docs/replicator.md)\n", stderr);
    return 1;
}
