#include "store/save_queue.h"

#include <algorithm>
#include <exception>
#include <stdexcept>
#include <string>

namespace kvstream::store {

Overflow parse_overflow(std::string_view s) {
  if (s == "block") return Overflow::Block;
  if (s == "drop-oldest") return Overflow::DropOldest;
  throw std::invalid_argument("unknown overflow policy '" + std::string(s) + "' (block or drop-oldest)");
}

SaveQueue::SaveQueue(size_t capacity, Overflow overflow, int workers)
    : capacity_(capacity), overflow_(overflow) {
  if (capacity == 0) throw std::invalid_argument("SaveQueue: capacity must be at least 1");
  if (workers < 1) throw std::invalid_argument("SaveQueue: at least one worker");
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { run(); });
}

SaveQueue::~SaveQueue() {
  flush();
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void SaveQueue::enqueue_locked(Job job) {
  q_.push_back(std::move(job));
  ++st_.pushed;
  st_.max_depth = std::max(st_.max_depth, q_.size());
  work_cv_.notify_one();
}

void SaveQueue::push(Job job) {
  std::unique_lock lock(mu_);
  if (overflow_ == Overflow::Block) {
    space_cv_.wait(lock, [&] { return q_.size() < capacity_; });
  } else {
    while (q_.size() >= capacity_) {
      q_.pop_front();
      ++st_.dropped;
    }
  }
  enqueue_locked(std::move(job));
  if (q_.empty() && running_ == 0) done_cv_.notify_all();
}

bool SaveQueue::try_push(Job job) {
  std::lock_guard lock(mu_);
  if (q_.size() >= capacity_) {
    if (overflow_ == Overflow::Block) {
      ++st_.rejected;
      return false;
    }
    q_.pop_front();
    ++st_.dropped;
  }
  enqueue_locked(std::move(job));
  return true;
}

void SaveQueue::flush() {
  std::unique_lock lock(mu_);
  done_cv_.wait(lock, [&] { return q_.empty() && running_ == 0; });
}

size_t SaveQueue::depth() const {
  std::lock_guard lock(mu_);
  return q_.size();
}

SaveQueueStats SaveQueue::stats() const {
  std::lock_guard lock(mu_);
  return st_;
}

void SaveQueue::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [&] { return stop_ || !q_.empty(); });
    if (q_.empty()) break;  // stop_ and nothing left
    Job job = std::move(q_.front());
    q_.pop_front();
    ++running_;
    space_cv_.notify_one();
    lock.unlock();
    bool ok = true;
    try {
      job();
    } catch (const std::exception&) {
      ok = false;
    } catch (...) {
      ok = false;
    }
    lock.lock();
    --running_;
    if (ok) ++st_.completed;
    else ++st_.failed;
    if (q_.empty() && running_ == 0) done_cv_.notify_all();
  }
}

}  // namespace kvstream::store
