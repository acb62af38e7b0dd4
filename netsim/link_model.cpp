// netsim/link_model.cpp — FIFO bottleneck queue drained by trace opportunities (virtual finish times).
//
// Every queued byte is given a "capacity position": the index of the byte of cumulative trace
// capacity that will carry it. A run of bytes enqueued at `now` starts after the previous run's
// last position, or after all capacity strictly before `now` when the queue has run dry (that
// capacity found nothing to carry and is lost). A byte at position p departs at
// trace.time_at_cumulative(p). Queue occupancy at t is (last position) - cumulative_bytes(t).
#include "netsim/link_model.h"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>

namespace kvstream::netsim {

LinkModel::LinkModel(Trace trace, LinkConfig config) : trace_(std::move(trace)), config_(config) {
  if (trace_.empty()) throw TraceError("LinkModel: no trace given");
  if (config_.delay_ns < 0) throw std::invalid_argument("link delay must be >= 0");
  config_.delay_ns += trace_.path_delay_ns();
}

void LinkModel::check_time(TimeNs now) {
  if (now < last_now_)
    throw std::invalid_argument("LinkModel: time went backwards (" + std::to_string(now) + " ns < " +
                                std::to_string(last_now_) + " ns)");
  last_now_ = now;
}

std::uint64_t LinkModel::start_position(TimeNs now) const {
  const std::uint64_t before = now > 0 ? trace_.cumulative_bytes(now - 1) : 0;
  return std::max(end_position_, before);
}

std::uint64_t LinkModel::queued_bytes(TimeNs now) const {
  const std::uint64_t served = trace_.cumulative_bytes(now);
  return end_position_ > served ? end_position_ - served : 0;
}

std::uint64_t LinkModel::free_bytes(TimeNs now) const {
  if (config_.queue_bytes == 0) return std::numeric_limits<std::uint64_t>::max();
  const std::uint64_t q = queued_bytes(now);
  return q >= config_.queue_bytes ? 0 : config_.queue_bytes - q;
}

EnqueueResult LinkModel::enqueue(TimeNs now, std::uint64_t bytes, std::uint32_t flow) {
  check_time(now);
  EnqueueResult r;
  const std::uint64_t room = free_bytes(now);
  r.accepted = std::min(bytes, room);
  if (config_.policy == QueuePolicy::kDropTail) r.dropped = bytes - r.accepted;
  dropped_ += r.dropped;
  if (r.accepted == 0) {
    r.last_departure = now;
    r.last_arrival = now + config_.delay_ns;
    return r;
  }
  const std::uint64_t start = start_position(now);
  const std::uint64_t end = start + r.accepted;
  r.first_position = start;
  r.last_position = end;
  if (!queue_.empty() && queue_.back().flow == flow && queue_.back().end == start) {
    queue_.back().end = end;
  } else {
    queue_.push_back(Segment{flow, start, end, 0});
  }
  end_position_ = end;
  accepted_ += r.accepted;
  r.last_departure = trace_.time_at_cumulative(end);
  r.last_arrival = r.last_departure + config_.delay_ns;
  return r;
}

void LinkModel::advance(TimeNs now, std::vector<Departure>& out) {
  check_time(now);
  const std::uint64_t served = trace_.cumulative_bytes(now);
  while (!queue_.empty()) {
    Segment& s = queue_.front();
    const std::uint64_t done_pos = std::min(s.end, served);
    const std::uint64_t from = s.start + s.reported;
    if (done_pos > from) {
      Departure d;
      d.flow = s.flow;
      d.bytes = done_pos - from;
      d.departure = trace_.time_at_cumulative(done_pos);
      d.arrival = d.departure + config_.delay_ns;
      out.push_back(d);
      s.reported += d.bytes;
    }
    if (s.start + s.reported < s.end) break;
    queue_.pop_front();
  }
}

std::optional<TimeNs> LinkModel::next_departure() const {
  if (queue_.empty()) return std::nullopt;
  const Segment& s = queue_.front();
  return trace_.time_at_cumulative(s.start + s.reported + 1);
}

TimeNs LinkModel::departure_if_enqueued(TimeNs now, std::uint64_t bytes) const {
  if (bytes == 0) return now;
  return trace_.time_at_cumulative(start_position(now) + bytes);
}

}  // namespace kvstream::netsim
