// netsim/simulator.cpp — stepwise virtual-time transfers over a LinkModel.
#include "netsim/simulator.h"

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

double Simulator::send(std::uint64_t bytes, double at_s) {
  const TimeNs at = to_ns_checked(at_s);
  const EnqueueResult r = link_.enqueue(at, bytes);
  bytes_sent_ += r.accepted;
  scratch_.clear();
  link_.advance(at, scratch_);  // drop bookkeeping of what has already left (bounded memory)
  if (bytes == 0) return ns_to_seconds(at + link_.config().delay_ns);
  return ns_to_seconds(r.last_arrival);
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
