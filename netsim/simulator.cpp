// netsim/simulator.cpp — stepwise virtual-time transfers over a LinkModel.
#include "netsim/simulator.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace kvstream::netsim {

namespace {
TimeNs to_ns_checked(double s) {
  if (!std::isfinite(s) || s < 0 || s > 1e9) throw std::invalid_argument("simulator time must be in [0, 1e9] s");
  return seconds_to_ns(s);
}
LinkConfig sim_config(double delay_s) {
  if (!std::isfinite(delay_s) || delay_s < 0 || delay_s > 1e6)
    throw std::invalid_argument("simulator delay must be in [0, 1e6] s");
  LinkConfig c;
  c.delay_ns = seconds_to_ns(delay_s);
  c.queue_bytes = 0;  // back-pressured sender: nothing lost, nothing refused
  return c;
}
}  // namespace

Simulator::Simulator(Trace trace, double delay_s) : link_(std::move(trace), sim_config(delay_s)) {}

double Simulator::send(std::uint64_t bytes, double at_s) { return send_span(bytes, at_s).last_arrival_s; }

Simulator::Span Simulator::send_span(std::uint64_t bytes, double at_s) {
  const TimeNs at = to_ns_checked(at_s);
  const EnqueueResult r = link_.enqueue(at, bytes);
  bytes_sent_ += r.accepted;
  scratch_.clear();
  link_.advance(at, scratch_);
  Span s;
  s.first_position = r.accepted ? r.first_position : 0;
  s.last_position = r.accepted ? r.last_position : 0;
  s.last_arrival_s = ns_to_seconds(bytes ? r.last_arrival : at + link_.config().delay_ns);
  return s;
}

std::uint64_t Simulator::arrived_by(const Span& span, double t_s) const {
  if (span.bytes() == 0 || !std::isfinite(t_s)) return std::isfinite(t_s) ? 0 : span.bytes();
  const TimeNs dep = seconds_to_ns(t_s) - link_.config().delay_ns;
  if (dep < 0) return 0;
  const std::uint64_t c = link_.trace().cumulative_bytes(dep);
  return c <= span.first_position ? 0 : std::min(c, span.last_position) - span.first_position;
}

double Simulator::arrival_of(const Span& span, std::uint64_t k) const {
  if (k == 0 || k > span.bytes()) throw std::invalid_argument("Simulator::arrival_of: byte outside the span");
  return ns_to_seconds(link_.trace().time_at_cumulative(span.first_position + k) + link_.config().delay_ns);
}

double Simulator::peek(std::uint64_t bytes, double at_s) const {
  const TimeNs at = to_ns_checked(at_s);
  return ns_to_seconds(link_.departure_if_enqueued(at, bytes) + link_.config().delay_ns);
}

double Simulator::transfer_time(std::uint64_t bytes, double at_s) const {
  const TimeNs at = to_ns_checked(at_s);
  return ns_to_seconds(link_.trace().time_to_deliver(at, bytes) + link_.config().delay_ns - at);
}

void Simulator::reset() {
  link_ = LinkModel(link_.trace(), link_.config());
  bytes_sent_ = 0;
}

double Simulator::delay_s() const { return ns_to_seconds(link_.config().delay_ns); }

std::vector<double> simulate(const Trace& trace, std::span<const SimSend> sends, double delay_s) {
  Simulator sim(trace, delay_s);
  std::vector<double> out;
  out.reserve(sends.size());
  for (const auto& s : sends) out.push_back(sim.send(s.bytes, s.at_s));
  return out;
}

}  // namespace kvstream::netsim
