// Worker pool (see worker_pool.h).
#include "streamer/worker_pool.h"

#include <stdexcept>

namespace kvstream::streamer {

WorkerPool::WorkerPool(int threads) {
  if (threads < 1) throw std::invalid_argument("a worker pool needs at least one thread");
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
}

WorkerPool::~WorkerPool() { stop(); }

void WorkerPool::submit(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return;
    q_.push_back(std::move(task));
  }
  cv_.notify_one();
}

void WorkerPool::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    q_.clear();
  }
  cv_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

size_t WorkerPool::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return q_.size();
}

void WorkerPool::loop() {
  while (true) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !q_.empty(); });
      if (stop_) return;
      task = std::move(q_.front());
      q_.pop_front();
    }
    try {
      task();
    } catch (...) {
      // a task reports its own errors; one that escapes must not take the worker down
    }
  }
}

}  // namespace kvstream::streamer
