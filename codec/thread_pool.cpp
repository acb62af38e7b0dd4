#include "codec/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace kvstream::codec {
namespace {

// One parallel_for's shared state: items are claimed from `next`; the first error stops claiming.
struct Job {
  const std::function<void(size_t)>* fn = nullptr;
  size_t n = 0;
  std::atomic<size_t> next{0};
  std::mutex error_mu;
  std::exception_ptr error;

  void work() {
    for (size_t i; (i = next.fetch_add(1)) < n;) {
      try {
        (*fn)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!error) error = std::current_exception();
        next.store(n);
      }
    }
  }
};

void run_on_new_threads(Job& job, size_t workers) {
  std::vector<std::thread> pool;
  for (size_t w = 1; w < workers; ++w) pool.emplace_back([&job] { job.work(); });
  job.work();
  for (auto& t : pool) t.join();
}

// The persistent workers. Protocol (all atomics sequentially consistent):
// - run(): publishes the job (job_, slots_ = helpers wanted, closed_ = false), then bumps gen_
//   under mu_ (so a sleeping worker cannot miss it), works, then sets closed_ and waits until
//   inside_ == 0: after that no worker touches the job again.
// - a worker that sees a new gen_ enters (inside_++), and joins only if the job is still open and a
//   slot is left; it leaves (inside_--) when the job has no items left. A worker that enters after
//   closed_ was set sees it (the store of closed_ and the load of inside_ cannot both miss).
class Pool {
 public:
  explicit Pool(size_t helpers) {
    for (size_t i = 0; i < helpers; ++i) threads_.emplace_back([this] { loop(); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      gen_.fetch_add(1);
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  size_t helpers() const { return threads_.size(); }
  bool try_acquire() { return !busy_.test_and_set(); }
  void release() { busy_.clear(); }

  // Tells spinning workers to sleep now and waits until all do; the caller must hold the pool.
  void park() {
    park_seq_.fetch_add(1);
    while (size_t(sleepers_.load()) < threads_.size()) std::this_thread::yield();
  }

  // Runs job on the caller and up to `helpers` workers; the caller must hold the pool.
  void run(Job& job, size_t helpers) {
    job_.store(&job);
    slots_.store(int(helpers));
    closed_.store(false);
    {
      std::lock_guard<std::mutex> lock(mu_);
      gen_.fetch_add(1);
    }
    if (sleepers_.load()) cv_.notify_all();
    job.work();
    closed_.store(true);
    while (inside_.load()) std::this_thread::yield();
    busy_.clear();
  }

 private:
  void loop() {
    // gen_ as it was when the pool started this thread, not when the thread first runs: a thread
    // that starts late (a loaded machine) must still see the jobs and the stop published since.
    uint64_t seen = 0;
    for (;;) {
      wait_for_change(seen);
      seen = gen_.load();
      if (stop_flag()) return;
      inside_.fetch_add(1);
      if (!closed_.load() && slots_.fetch_sub(1) > 0) job_.load()->work();
      inside_.fetch_sub(1);
    }
  }
  void wait_for_change(uint64_t seen) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(kSpinMicros);
    const uint64_t park = park_seq_.load();
    for (unsigned k = 0; gen_.load() == seen; ++k) {
      if (park_seq_.load() != park || ((k & 63u) == 0 && std::chrono::steady_clock::now() > until)) {
        std::unique_lock<std::mutex> lock(mu_);
        sleepers_.fetch_add(1);
        cv_.wait(lock, [&] { return gen_.load() != seen; });
        sleepers_.fetch_sub(1);
        return;
      }
      std::this_thread::yield();
    }
  }
  bool stop_flag() {
    std::lock_guard<std::mutex> lock(mu_);
    return stop_;
  }

  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                 // under mu_
  std::atomic<uint64_t> gen_{0};      // changed under mu_
  std::atomic<int> sleepers_{0};
  std::atomic<uint64_t> park_seq_{0};  // bumped by park(): spinning workers go to sleep
  std::atomic_flag busy_ = ATOMIC_FLAG_INIT;
  std::atomic<Job*> job_{nullptr};    // valid while the job is open
  std::atomic<int> slots_{0};
  std::atomic<bool> closed_{true};
  std::atomic<int> inside_{0};
};

Pool& pool() {
  static Pool p(size_t(resolve_threads(0)) - 1);
  return p;
}

}  // namespace

int resolve_threads(int threads) {
  if (threads > 0) return threads;
  return std::max(1u, std::thread::hardware_concurrency());
}

void park_workers() {
  Pool& p = pool();
  if (p.helpers() == 0 || !p.try_acquire()) return;
  p.park();
  p.release();
}

void parallel_for(size_t n, int threads, const std::function<void(size_t)>& fn) {
  const size_t workers = std::min<size_t>(n, static_cast<size_t>(resolve_threads(threads)));
  Job job;
  job.fn = &fn;
  job.n = n;
  if (workers <= 1) {
    job.work();
  } else if (Pool& p = pool(); p.helpers() > 0 && p.try_acquire()) {
    p.run(job, std::min(workers - 1, p.helpers()));
  } else {
    run_on_new_threads(job, workers);
  }
  if (job.error) std::rethrow_exception(job.error);
}

}  // namespace kvstream::codec
