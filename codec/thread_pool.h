// thread_pool.h: a parallel-for over an index range for encode/decode over chunks.
//
// Contract: parallel_for(n, threads, fn) calls fn(i) exactly once for each i in [0, n) using up to
// `threads` threads (0 = std::thread::hardware_concurrency()), the caller's included; the first
// exception thrown by any fn is rethrown in the caller after all workers stop. Safe to call from
// several threads at once and from inside fn.
//
// Threads: a process-wide pool of hardware_concurrency() - 1 workers, started on first use, serves
// one parallel_for at a time, so that a short job (decoding one 512-token context is ~150 us) does
// not pay a thread start per call. A worker that finishes spins for at most kSpinMicros waiting
// for the next job, then sleeps on a condition variable (the bounded spin is what back-to-back
// decodes need; after it a worker costs nothing). A call made while the pool is busy (another
// parallel_for, or a nested one) runs on threads of its own, started for the call, as before.
#pragma once
#include <cstddef>
#include <functional>

namespace kvstream::codec {

inline constexpr int kSpinMicros = 2000;

int resolve_threads(int threads);
void parallel_for(size_t n, int threads, const std::function<void(size_t)>& fn);

// Stops the pool's spinning workers now instead of after kSpinMicros, and returns once all of
// them sleep (they wake for the next parallel_for), within about kSpinMicros. For a caller about
// to run single-threaded work that a spinning worker would share a core with (a benchmark's
// one-core pass). Returns at once when the pool is serving a parallel_for.
void park_workers();

}  // namespace kvstream::codec
