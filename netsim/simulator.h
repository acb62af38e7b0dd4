// netsim/simulator.h — discrete-event, virtual-time simulation of transfers over a trace-driven
// link, using the same LinkModel as the relay (so a policy can be swept over many traces in
// milliseconds and then confirmed on real sockets through netsim::Relay).
//
// Contract
// - Times are seconds (double) of virtual time since the start of the trace (t = 0); the trace
//   loops. Internally nanoseconds (rounded).
// - send(bytes, at_s): `bytes` are handed to the link at at_s (they queue FIFO behind earlier
//   sends still in flight); returns the time the LAST byte arrives at the receiver (departure from
//   the bottleneck + one-way delay). The queue is unlimited/back-pressured: nothing is lost, which
//   matches a TCP sender through the relay (the relay terminates TCP on loopback at both ends, so
//   there is no slow start or loss across the shaped link). at_s must be >= the previous send's
//   at_s (std::invalid_argument otherwise); bytes == 0 returns at_s + delay.
// - Stepwise: a controller may call send() after looking at the previous arrival time.
// - peek(bytes, at_s) is the same answer without changing state (sends queued so far count).
// - transfer_time(bytes, at_s) is an oracle on an idle link: seconds from at_s until the last byte
//   arrives (including delay), ignoring earlier sends. Both are const and O(log n).
// - The reverse direction (receiver -> sender, e.g. a request) is only delayed: use delay_s().
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "netsim/link_model.h"
#include "netsim/trace.h"

namespace kvstream::netsim {

class Simulator {
 public:
  explicit Simulator(Trace trace, double delay_s = 0.0);

  double send(std::uint64_t bytes, double at_s);
  // The same, returning where the bytes sit on the link, so that their arrival can be followed.
  struct Span {
    std::uint64_t first_position = 0, last_position = 0;  // (first, last]
    double last_arrival_s = 0;
    std::uint64_t bytes() const { return last_position - first_position; }
  };
  Span send_span(std::uint64_t bytes, double at_s);
  // Bytes of `span` that have arrived by t_s (departure + delay <= t_s).
  std::uint64_t arrived_by(const Span& span, double t_s) const;
  // When the k-th byte (1-based, k <= span.bytes()) of `span` arrives.
  double arrival_of(const Span& span, std::uint64_t k) const;
  double peek(std::uint64_t bytes, double at_s) const;
  double transfer_time(std::uint64_t bytes, double at_s) const;
  void reset();  // forget all sends (idle link, time 0)

  double delay_s() const;  // the one-way delay given plus the trace's path delay
  const Trace& trace() const { return link_.trace(); }
  std::uint64_t bytes_sent() const { return bytes_sent_; }

 private:
  LinkModel link_;
  std::uint64_t bytes_sent_ = 0;
  std::vector<Departure> scratch_;
};

// Batch helper: arrival time of each send's last byte, sends in order (at_s non-decreasing).
struct SimSend {
  std::uint64_t bytes = 0;
  double at_s = 0;
};
std::vector<double> simulate(const Trace& trace, std::span<const SimSend> sends, double delay_s = 0.0);

}  // namespace kvstream::netsim
