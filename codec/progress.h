// progress.h: how long library work (profiling, evaluation, benchmarks, replays) tells its caller
// how far it is, so that a front end can draw it (the CLI: cli/progress.h). The library never
// prints progress itself.
//
// Contract: a ProgressFn is called as fn(stage, done, total) with 0 < done <= total, once per
// finished unit of a stage (stage names are short, e.g. "candidates"); `done` grows within a stage.
// Calls are never concurrent (ProgressCounter serialises the calls its workers make). An empty
// ProgressFn is allowed and costs nothing.
#pragma once
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

namespace kvstream {

using ProgressFn = std::function<void(std::string_view stage, size_t done, size_t total)>;

// Counts finished units of one stage from any thread and reports each one.
class ProgressCounter {
 public:
  ProgressCounter(const ProgressFn& fn, std::string stage, size_t total)
      : fn_(fn), stage_(std::move(stage)), total_(total) {}
  void step() {
    if (!fn_) return;
    std::lock_guard<std::mutex> lock(mu_);
    fn_(stage_, ++done_, total_);
  }

 private:
  const ProgressFn& fn_;
  std::string stage_;
  size_t total_, done_ = 0;
  std::mutex mu_;
};

}  // namespace kvstream
