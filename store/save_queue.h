// SaveQueue: AttentionStore's asynchronous saving. Jobs (encode a turn's KV cache, put it in the
// store) run on worker threads so that the request path only enqueues.
//
// Contract: at most `capacity` jobs wait in the queue (jobs being run are not counted). When it is
// full, push() either blocks until a slot frees (Overflow::Block: back-pressure onto the caller) or
// discards the oldest waiting job to make room (Overflow::DropOldest: the newest KV wins; a
// dropped save only costs a future miss). try_push() never blocks: it returns false where push()
// would block. flush() waits until every accepted job has run or been dropped. The destructor
// flushes, then joins the workers. A job that throws is counted in failed(); the worker continues.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

namespace kvstream::store {

enum class Overflow { Block, DropOldest };
// "block" or "drop-oldest" (std::invalid_argument otherwise).
Overflow parse_overflow(std::string_view s);

struct SaveQueueStats {
  uint64_t pushed = 0, completed = 0, failed = 0, dropped = 0, rejected = 0;
  size_t max_depth = 0;  // most jobs ever waiting at once (never above capacity)
};

class SaveQueue {
 public:
  using Job = std::function<void()>;
  // capacity >= 1, workers >= 1 (std::invalid_argument).
  SaveQueue(size_t capacity, Overflow overflow, int workers = 1);
  ~SaveQueue();
  SaveQueue(const SaveQueue&) = delete;
  SaveQueue& operator=(const SaveQueue&) = delete;

  void push(Job job);
  bool try_push(Job job);
  void flush();
  size_t depth() const;
  size_t capacity() const { return capacity_; }
  SaveQueueStats stats() const;

 private:
  void run();
  void enqueue_locked(Job job);
  const size_t capacity_;
  const Overflow overflow_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_, space_cv_, done_cv_;
  std::deque<Job> q_;
  size_t running_ = 0;
  bool stop_ = false;
  SaveQueueStats st_;
  std::vector<std::thread> workers_;
};

}  // namespace kvstream::store
