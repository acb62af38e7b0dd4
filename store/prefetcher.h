// Prefetcher: a background thread that moves the entries of soon-to-be-served requests from the
// disk tier to the memory tier, off the request path (AttentionStore's scheduler-aware fetching).
//
// Contract: schedule(upcoming) hands the store the look-ahead queue (TieredStore::set_lookahead)
// and wakes the thread, which runs TieredStore::prefetch() (entries in the prefetch window, nearest
// first) until nothing is left to do; a newer schedule() supersedes an older one. wait_idle()
// blocks until the thread has finished all the work scheduled so far. The destructor stops and
// joins the thread. Errors inside prefetch() are counted (errors()) and never escape the thread.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "store/tiered_store.h"

namespace kvstream::store {

class Prefetcher {
 public:
  explicit Prefetcher(TieredStore& store);
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  void schedule(std::vector<PrefixKey> upcoming);
  void wait_idle();
  uint64_t moved() const;
  uint64_t errors() const;

 private:
  void run();
  TieredStore& store_;
  mutable std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::optional<std::vector<PrefixKey>> pending_;
  bool busy_ = false, stop_ = false;
  uint64_t moved_ = 0, errors_ = 0;
  std::thread thread_;
};

}  // namespace kvstream::store
