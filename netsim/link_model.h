// netsim/link_model.h — the one bottleneck-link model shared by the relay and the simulator.
//
// Contract
// - Time-abstract: every call takes the caller's current time `now` (TimeNs, same origin as the
//   Trace). Times passed to a LinkModel must be non-decreasing (std::invalid_argument otherwise).
//   The relay feeds it a steady clock, the simulator virtual time, tests a ManualClock.
// - Mahimahi semantics: a FIFO byte queue drained by the trace's delivery opportunities; an
//   opportunity at time t carries up to its bytes from what is queued at t (bytes enqueued at
//   exactly t are eligible); capacity that finds the queue empty is lost, never banked. Bytes may
//   be split across opportunities (as mm-link does with packets).
// - Queue limit `queue_bytes` (0 = unlimited) counts bytes enqueued and not yet departed:
//   kBackpressure accepts only what fits and tells the caller (who keeps the rest — the relay
//   stops reading its socket); kDropTail accepts what fits and counts the rest as dropped.
// - One-way propagation delay: a byte departing the queue at t arrives at t + delay_ns, where
//   config().delay_ns is the configured delay plus the trace's own path_delay_ns().
// - Several flows share the queue (FIFO across flows); departures are reported per flow.
// - Cost: O(log trace) per call plus O(segments reported).
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "netsim/trace.h"

namespace kvstream::netsim {

// Clock seam: the relay reads a SteadyClock; tests and the simulator use a ManualClock.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimeNs now() const = 0;
};
class SteadyClock final : public Clock {
 public:
  SteadyClock() : origin_(std::chrono::steady_clock::now()) {}
  TimeNs now() const override {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - origin_).count();
  }
  std::chrono::steady_clock::time_point origin() const { return origin_; }

 private:
  std::chrono::steady_clock::time_point origin_;
};
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimeNs start = 0) : t_(start) {}
  TimeNs now() const override { return t_.load(); }
  void set(TimeNs t) { t_.store(t); }
  void advance(TimeNs dt) { t_.fetch_add(dt); }

 private:
  std::atomic<TimeNs> t_;
};

enum class QueuePolicy { kBackpressure, kDropTail };

struct LinkConfig {
  TimeNs delay_ns = 0;             // one-way propagation delay
  std::uint64_t queue_bytes = 0;   // 0 = unlimited
  QueuePolicy policy = QueuePolicy::kBackpressure;
};

struct EnqueueResult {
  std::uint64_t accepted = 0;   // bytes now in the queue
  std::uint64_t dropped = 0;    // kDropTail only: bytes refused
  TimeNs last_departure = 0;    // when the last accepted byte leaves the queue (now if accepted == 0)
  TimeNs last_arrival = 0;      // last_departure + delay_ns
  // The accepted bytes occupy capacity positions (first_position, last_position] of the trace:
  // the byte at position p departs at trace().time_at_cumulative(p).
  std::uint64_t first_position = 0, last_position = 0;
};

// A run of `bytes` bytes of one flow that left the queue; the last of them at `departure`.
struct Departure {
  std::uint32_t flow = 0;
  std::uint64_t bytes = 0;
  TimeNs departure = 0;
  TimeNs arrival = 0;  // departure + delay_ns
};

class LinkModel {
 public:
  LinkModel(Trace trace, LinkConfig config);

  const Trace& trace() const { return trace_; }
  const LinkConfig& config() const { return config_; }

  // Hand `bytes` of `flow` to the link at `now`.
  EnqueueResult enqueue(TimeNs now, std::uint64_t bytes, std::uint32_t flow = 0);
  // Report (append to `out`) every byte that has departed by `now` and not been reported yet,
  // in departure order; a partly departed run is reported up to `now`.
  void advance(TimeNs now, std::vector<Departure>& out);

  std::uint64_t queued_bytes(TimeNs now) const;  // enqueued, not yet departed at `now`
  std::uint64_t free_bytes(TimeNs now) const;    // room left (UINT64_MAX when unlimited)
  // Time the next not-yet-reported byte departs (nullopt when nothing is pending report).
  std::optional<TimeNs> next_departure() const;
  // Read-only: when the last of `bytes` would depart if enqueued at `now` (limit ignored).
  TimeNs departure_if_enqueued(TimeNs now, std::uint64_t bytes) const;

  std::uint64_t total_accepted() const { return accepted_; }
  std::uint64_t total_dropped() const { return dropped_; }

 private:
  struct Segment {
    std::uint32_t flow;
    std::uint64_t start;     // capacity position before its first byte
    std::uint64_t end;       // capacity position of its last byte
    std::uint64_t reported;  // bytes already reported by advance()
  };
  std::uint64_t start_position(TimeNs now) const;
  void check_time(TimeNs now);

  Trace trace_;
  LinkConfig config_;
  std::deque<Segment> queue_;
  std::uint64_t end_position_ = 0;  // capacity position of the last byte ever enqueued
  TimeNs last_now_ = 0;
  std::uint64_t accepted_ = 0, dropped_ = 0;
};

}  // namespace kvstream::netsim
