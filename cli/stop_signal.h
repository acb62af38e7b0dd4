// StopSignal: how long-running commands (relay, send) wait to be stopped.
//
// Contract: construct it BEFORE starting any thread, so SIGINT/SIGTERM are blocked in every thread
// and only wait() sees them; wait(duration_s) returns on SIGINT, SIGTERM, or after duration_s
// seconds when duration_s > 0.
#pragma once
#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <ctime>

namespace kvstream::cli {

class StopSignal {
 public:
  StopSignal() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
  }
  void wait(double duration_s) const {
    const auto start = std::chrono::steady_clock::now();
    while (true) {
      timespec ts{0, 200'000'000};
      if (sigtimedwait(&set_, nullptr, &ts) > 0) return;
      if (duration_s > 0 &&
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >= duration_s)
        return;
    }
  }

 private:
  sigset_t set_;
};

}  // namespace kvstream::cli
