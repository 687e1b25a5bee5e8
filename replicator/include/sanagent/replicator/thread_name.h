// Names the calling thread as `top -H`, `ps -L`, perf and gdb show it: an
// admin sees which part of sanrepd is busy (at most 15 characters, the
// kernel's limit; longer names are refused and the thread keeps "sanrepd").
#pragma once

#include <pthread.h>

namespace sanagent::replicator {

inline void name_thread(const char* name) {
    ::pthread_setname_np(::pthread_self(), name);
}

}  // namespace sanagent::replicator
