#include "store/prefetcher.h"

#include <exception>

namespace kvstream::store {

Prefetcher::Prefetcher(TieredStore& store) : store_(store), thread_([this] { run(); }) {}

Prefetcher::~Prefetcher() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Prefetcher::schedule(std::vector<PrefixKey> upcoming) {
  {
    std::lock_guard lock(mu_);
    pending_ = std::move(upcoming);
  }
  cv_.notify_all();
}

void Prefetcher::wait_idle() {
  std::unique_lock lock(mu_);
  idle_cv_.wait(lock, [&] { return !pending_ && !busy_; });
}

uint64_t Prefetcher::moved() const {
  std::lock_guard lock(mu_);
  return moved_;
}

uint64_t Prefetcher::errors() const {
  std::lock_guard lock(mu_);
  return errors_;
}

void Prefetcher::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || pending_; });
    if (stop_) break;
    std::vector<PrefixKey> upcoming = std::move(*pending_);
    pending_.reset();
    busy_ = true;
    lock.unlock();
    size_t n = 0;
    bool failed = false;
    try {
      store_.set_lookahead(std::move(upcoming));
      n = store_.prefetch();
    } catch (const std::exception&) {
      failed = true;
    }
    lock.lock();
    moved_ += n;
    if (failed) ++errors_;
    busy_ = false;
    if (!pending_) idle_cv_.notify_all();
  }
  busy_ = false;
  idle_cv_.notify_all();
}

}  // namespace kvstream::store
