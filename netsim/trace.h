// netsim/trace.h — link-capacity traces (Mahimahi, Pensieve "cooked", constant rate).
//
// Contract
// - A Trace is an immutable, cheaply copyable value (shared data) describing the link's capacity
//   over time, in one of two forms:
//   * delivery opportunities (Mahimahi, const): an opportunity at time t can carry up to its byte
//     count across the link; capacity that finds nothing to carry is lost (never banked);
//   * rate segments (cooked): a constant bit rate over each segment, capacity accruing
//     continuously (a fluid link); the capacity up to t is floor(integral of the rate / 8) bytes.
//   Both answer the same integrated queries below, so the LinkModel, the relay and the simulator
//   cost O(log n) per call whatever the rate: memory is O(lines) of the file, never O(packets).
// - Time is integer nanoseconds (TimeNs) since the start of the trace (t = 0). The trace loops
//   forever with period period_ns(): an opportunity at offset o in [0, period) recurs at
//   o + k * period for every k >= 0 (exactly Mahimahi's looping: a final timestamp equal to the
//   period is the same instant as the next loop's offset 0); a rate trace repeats its segments
//   (the capacity of one period is rounded down to whole bytes, < 1 byte lost per loop).
// - Formats, auto-detected from the first non-empty, non-'#' line of the content:
//   * Mahimahi: one integer per line, a millisecond timestamp (<= 10^12); each line is one
//     1500-byte opportunity (repeated timestamps = several in that ms); period = last timestamp.
//   * Pensieve cooked: "time_s <whitespace> bandwidth_Mbps" per line (time <= 10^8 s, bandwidth
//     <= 10^7 Mbit/s); bandwidth b_i holds over [t_i, t_next), where t_next is the next larger
//     time in the file; the last time holds for the previous spacing of distinct times (1 s if the
//     file has a single distinct time); times are taken relative to the first line. Time must not
//     decrease. Repeated timestamps are samples of the same interval: a run of k lines with the
//     same time splits [t, t_next) into k equal parts, in file order (so no sample is dropped and
//     a file without repeats reads as before).
//   * "const:<rate>" pseudo-trace (a spec, not file content), rate = <number><unit>, unit one of
//     bit, kbit, mbit, gbit (case-insensitive), e.g. "const:50mbit": one 1500-byte opportunity
//     every 12000/rate seconds (period rounded to the nanosecond).
// - A comment line "# kvstream: delay_ms=<ms>" (0 <= ms <= 10^5) gives the path's own one-way
//   delay (path_delay_ns()); LinkModel, Relay and Simulator add it to the delay they are given.
//   `kvstream netsim gen` writes it for its long-RTT family.
// - scale > 0 multiplies every opportunity's bytes (cumulative rounding keeps the total exact to
//   within one byte per period) or every segment's rate; the timing is unchanged.
// - Bounds: what a trace asks for is bounded by its representation (one entry per line, merged
//   where equal). The only traces refused for size are those whose numbers cannot be represented:
//   more than 10^18 bytes of capacity per period (e.g. 10^7 Mbit/s for 10^8 s); queries whose
//   answer overflows 64 bits throw TraceError ("time overflow").
// - Errors (TraceError, with file:line where relevant): unreadable/empty file, malformed line,
//   negative/NaN/inf values, decreasing time, out-of-range values, zero period, zero total
//   capacity (also after scaling), bad const spec, scale <= 0.
// - All queries are O(log n) and thread-safe (const); stats() is O(n).
#pragma once
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "kvstream/error.h"

namespace kvstream::netsim {

using TimeNs = std::int64_t;  // nanoseconds of trace (virtual or link) time
inline constexpr TimeNs kNsPerSec = 1'000'000'000;
inline constexpr std::uint64_t kMtuBytes = 1500;
inline TimeNs seconds_to_ns(double s) { return static_cast<TimeNs>(s * 1e9 + (s >= 0 ? 0.5 : -0.5)); }
inline double ns_to_seconds(TimeNs t) { return static_cast<double>(t) * 1e-9; }

// A trace that cannot be read or represented; code() is kvstream::ErrorCode::kInvalidArgument.
class TraceError : public kvstream::Error {
 public:
  explicit TraceError(const std::string& what) : kvstream::Error(kvstream::ErrorCode::kInvalidArgument, what) {}
};

enum class TraceFormat { kMahimahi, kCooked, kConstant };

// Per-second capacity summary (bins of 1 s over one period; a trailing partial bin is dropped
// unless the period is shorter than 1 s, in which case the single bin is the whole period).
struct TraceStats {
  double duration_s = 0;  // one period
  double mean_mbps = 0;   // total bytes per period / period
  double min_mbps = 0;    // over per-second bins
  double max_mbps = 0;
  double cv = 0;          // stddev / mean over per-second bins (population stddev)
  std::size_t bins = 0;
};

class Trace {
 public:
  // An empty trace (no data): only empty() may be called on it; LinkModel, Simulator and Relay
  // reject it with TraceError.
  Trace() = default;
  bool empty() const { return d_ == nullptr; }
  // A path to a Mahimahi or cooked file, or a "const:<rate>" spec.
  static Trace load(const std::string& spec, double scale = 1.0);
  // Parse file content (format auto-detected). `name` is used in messages and name().
  static Trace parse(std::string_view content, double scale = 1.0, const std::string& name = "<memory>");
  // Constant rate in bits per second.
  static Trace constant(double bits_per_second, double scale = 1.0);
  // Build from explicit opportunities: offsets (ns, in [0, period), non-decreasing) and bytes.
  static Trace from_opportunities(std::vector<TimeNs> offsets_ns, std::vector<std::uint64_t> bytes,
                                  TimeNs period_ns, const std::string& name = "<custom>");

  const std::string& name() const;
  TraceFormat format() const;
  double scale() const;
  TimeNs period_ns() const;
  double period_s() const { return ns_to_seconds(period_ns()); }
  std::uint64_t bytes_per_period() const;
  double mean_bps() const;  // bits per second, averaged over one period
  // Distinct opportunity instants per period (Mahimahi, const); 0 for a rate trace.
  std::size_t opportunities_per_period() const;
  std::size_t segments() const;     // rate segments per period (cooked); 0 for opportunities
  bool is_rate() const;             // rate segments (cooked) rather than opportunities
  TimeNs path_delay_ns() const;     // the "# kvstream: delay_ms=" directive (0 if none)

  // Cumulative capacity: bytes of all opportunities at times in [0, t] (0 for t < 0).
  std::uint64_t cumulative_bytes(TimeNs t) const;
  // Bytes of all opportunities at times in (t0, t1]; 0 when t1 <= t0.
  std::uint64_t bytes_deliverable(TimeNs t0, TimeNs t1) const;
  // Earliest time t with cumulative_bytes(t) >= position (position >= 1; 0 for position 0).
  TimeNs time_at_cumulative(std::uint64_t position) const;
  // Time at which the last of `bytes` bytes, all ready at time t0 on an idle link, crosses the
  // link (opportunities at exactly t0 count). t0 itself when bytes == 0.
  TimeNs time_to_deliver(TimeNs t0, std::uint64_t bytes) const;

  TraceStats stats() const;

  struct Data;  // implementation detail (opaque)

 private:
  explicit Trace(std::shared_ptr<const Data> d) : d_(std::move(d)) {}
  std::shared_ptr<const Data> d_;
};

// Parse "50mbit" / "1.5gbit" / "800kbit" / "9600bit" into bits per second (TraceError if bad).
double parse_rate_bps(std::string_view rate);

}  // namespace kvstream::netsim
