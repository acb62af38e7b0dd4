// thread_pool.h: a minimal parallel-for over an index range for encode/decode over chunks.
//
// Contract: parallel_for(n, threads, fn) calls fn(i) exactly once for each i in [0, n) using up to
// `threads` threads (0 = std::thread::hardware_concurrency()); the first exception thrown by any
// fn is rethrown in the caller after all workers stop.
#pragma once
#include <cstddef>
#include <functional>

namespace kvstream::codec {

int resolve_threads(int threads);
void parallel_for(size_t n, int threads, const std::function<void(size_t)>& fn);

}  // namespace kvstream::codec
