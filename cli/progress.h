// progress.h: the progress line of long commands (profile, eval, bench stream, replay) on stderr.
//
// Contract: Progress p("eval", wanted) draws "eval: <stage> <done>/<total> (<pct>%), <elapsed>
// elapsed, ~<left> left" on one stderr line, redrawn in place at most every 100 ms and when a
// stage completes, only when `wanted` (commands pass !json) and stderr is a terminal whose TERM is
// not "dumb": pipelines, redirected stderr and --json runs get nothing at all. fn() is the
// callback the library reports to (codec/progress.h); it must not outlive the Progress. finish()
// (also run by the destructor) erases the line, so that what the command prints next starts clean.
#pragma once
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "codec/progress.h"

namespace kvstream::cli {

class Progress {
 public:
  Progress(std::string command, bool wanted) : command_(std::move(command)), on_(wanted && stderr_is_terminal()) {}
  ~Progress() { finish(); }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  static bool stderr_is_terminal() {
    const char* term = std::getenv("TERM");
    return isatty(STDERR_FILENO) == 1 && !(term && std::strcmp(term, "dumb") == 0);
  }
  bool enabled() const { return on_; }

  ProgressFn fn() {
    if (!on_) return {};
    return [this](std::string_view stage, size_t done, size_t total) { update(stage, done, total); };
  }

  void finish() {
    if (on_ && drawn_) std::fputs("\r\033[K", stderr), std::fflush(stderr);
    drawn_ = false;
  }

 private:
  using Clock = std::chrono::steady_clock;
  static std::string duration(double s) {
    char buf[32];
    const long t = long(s + 0.5);
    if (t >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
    return buf;
  }

  void update(std::string_view stage, size_t done, size_t total) {
    const auto now = Clock::now();
    if (stage != stage_) stage_ = std::string(stage), stage_start_ = now;
    if (drawn_ && done < total && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double in_stage = std::chrono::duration<double>(now - stage_start_).count();
    std::string line = command_ + ": " + stage_ + " " + std::to_string(done) + "/" + std::to_string(total) + " (" +
                       std::to_string(total ? 100 * done / total : 100) + "%), " + duration(elapsed) + " elapsed";
    if (done > 0 && done < total) line += ", ~" + duration(in_stage * double(total - done) / double(done)) + " left";
    std::fprintf(stderr, "\r\033[K%s", line.c_str());
    std::fflush(stderr);
    drawn_ = true;
  }

  std::string command_;
  bool on_;
  bool drawn_ = false;
  std::string stage_;
  Clock::time_point start_ = Clock::now(), stage_start_ = start_, last_draw_{};
};

}  // namespace kvstream::cli
