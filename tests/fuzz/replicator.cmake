# libFuzzer targets for the replicator's parsers (clang only; included from
# tests/CMakeLists.txt when the compiler is clang). Build in a separate tree:
#   CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DSANAGENT_FUZZ=ON
#   cmake --build build-fuzz --target replicator_nbd_fuzz replicator_peer_fuzz
#   build-fuzz/tests/replicator_peer_fuzz -max_total_time=60 build-fuzz/corpus-peer tests/fuzz/corpus/replicator_peer
# (./run fuzz does this for every target). The peer seeds are generated:
# build/tests/replicator_peer_seeds tests/fuzz/corpus/replicator_peer.
# The library is compiled again here with the fuzzer's instrumentation.
option(SANAGENT_FUZZ "Build the libFuzzer targets (clang)" OFF)
if(SANAGENT_FUZZ)
  set(REPLICATOR_FUZZ_CORE
    ${PROJECT_SOURCE_DIR}/replicator/src/nbd_protocol.cpp
    ${PROJECT_SOURCE_DIR}/replicator/src/nbd_handshake.cpp
    ${PROJECT_SOURCE_DIR}/replicator/src/peer_protocol.cpp
    ${PROJECT_SOURCE_DIR}/replicator/src/crc32c.cpp
    ${PROJECT_SOURCE_DIR}/replicator/src/generations.cpp
    ${PROJECT_SOURCE_DIR}/replicator/src/metadata.cpp
    ${PROJECT_SOURCE_DIR}/common/src/error.cpp)
  foreach(target replicator_nbd_fuzz replicator_peer_fuzz)
    add_executable(${target} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/${target}.cpp ${REPLICATOR_FUZZ_CORE})
    target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/replicator/include
      ${PROJECT_SOURCE_DIR}/common/include)
    target_compile_options(${target} PRIVATE -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_libraries(${target} PRIVATE PkgConfig::LIBISAL)
  endforeach()
endif()
