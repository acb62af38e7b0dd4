// A fixed pool of worker threads for the sender's blocking calls (file loads, container parsing,
// store and Redis reads), so that the I/O thread only moves bytes.
//
// Contract: submit() queues a task (FIFO) and never blocks; tasks run on one of `threads` workers.
// A task's exception is caught and dropped (tasks report their own errors). stop() lets running
// tasks finish, drops the ones not started, and joins; it is idempotent and the destructor calls
// it. submit() after stop() drops the task.
#pragma once
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace kvstream::streamer {

class WorkerPool {
 public:
  explicit WorkerPool(int threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;
  void submit(std::function<void()> task);
  void stop();
  size_t queued() const;

 private:
  void loop();
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> q_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace kvstream::streamer
