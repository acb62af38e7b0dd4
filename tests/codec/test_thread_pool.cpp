// parallel_for over the persistent pool: every index exactly once, errors rethrown, and the calls
// the pool cannot take (nested, concurrent) still complete on threads of their own.
#include <catch2/catch.hpp>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "codec/thread_pool.h"

using namespace kvstream::codec;

namespace {

// Runs parallel_for(n, threads) and returns how many times each index was called.
std::vector<int> call_counts(size_t n, int threads) {
  std::vector<std::atomic<int>> hits(n);
  parallel_for(n, threads, [&](size_t i) { hits[i].fetch_add(1); });
  std::vector<int> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = hits[i].load();
  return out;
}

}  // namespace

TEST_CASE("parallel_for calls every index exactly once, call after call") {
  for (int round = 0; round < 200; ++round)  // back-to-back jobs: the pool's spin-and-reuse path
    for (size_t n : {size_t(0), size_t(1), size_t(2), size_t(7), size_t(64)}) {
      const auto counts = call_counts(n, 0);
      for (size_t i = 0; i < n; ++i) REQUIRE(counts[i] == 1);
    }
  std::this_thread::sleep_for(std::chrono::microseconds(3 * kSpinMicros));  // workers asleep now
  const auto counts = call_counts(100, 4);
  for (int c : counts) REQUIRE(c == 1);
}

TEST_CASE("parallel_for uses no more threads than asked") {
  for (int threads : {1, 2}) {
    std::atomic<int> running{0}, peak{0};
    parallel_for(64, threads, [&](size_t) {
      const int now = running.fetch_add(1) + 1;
      for (int p = peak.load(); now > p && !peak.compare_exchange_weak(p, now);) {
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      running.fetch_sub(1);
    });
    REQUIRE(peak.load() <= threads);
  }
}

TEST_CASE("parallel_for rethrows the first error and the pool still works after it") {
  std::atomic<int> calls{0};
  REQUIRE_THROWS_AS(parallel_for(1000, 0,
                                 [&](size_t i) {
                                   calls.fetch_add(1);
                                   std::this_thread::sleep_for(std::chrono::microseconds(50));
                                   if (i == 3) throw std::runtime_error("item 3");
                                 }),
                    std::runtime_error);
  REQUIRE(calls.load() < 1000);  // claiming stopped at the error (1000 x 50 us would take 25 ms)
  const auto counts = call_counts(50, 0);
  for (int c : counts) REQUIRE(c == 1);
}

TEST_CASE("parallel_for nested and from several threads at once completes every call") {
  std::atomic<int> inner{0};
  parallel_for(4, 0, [&](size_t) { parallel_for(8, 0, [&](size_t) { inner.fetch_add(1); }); });
  REQUIRE(inner.load() == 32);
  std::atomic<int> total{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t)
    callers.emplace_back([&] {
      for (int r = 0; r < 50; ++r) parallel_for(16, 0, [&](size_t) { total.fetch_add(1); });
    });
  for (auto& c : callers) c.join();
  REQUIRE(total.load() == 4 * 50 * 16);
}

TEST_CASE("park_workers returns, also while the pool is busy, and the pool still serves every index") {
  for (int round = 0; round < 50; ++round) {
    const auto before = call_counts(64, 0);  // workers spinning after this
    park_workers();
    park_workers();  // already asleep: returns at once
    const auto after = call_counts(64, 0);
    for (size_t i = 0; i < 64; ++i) REQUIRE((before[i] == 1 && after[i] == 1));
  }
  std::atomic<bool> inside{false}, release{false};
  std::thread busy([&] {
    parallel_for(2, 2, [&](size_t) {
      inside.store(true);
      while (!release.load()) std::this_thread::yield();
    });
  });
  while (!inside.load()) std::this_thread::yield();
  park_workers();  // the pool is serving `busy`'s job: must not wait for it
  release.store(true);
  busy.join();
  for (int c : call_counts(100, 0)) REQUIRE(c == 1);
}
