// netsim/trace_stats.cpp — per-second capacity statistics in O(lines), whatever the period.
//
// A period of P whole seconds has P bins; most are alike: a bin with no opportunity carries 0,
// and a bin inside one rate segment carries that segment's rate. So the bins are summarised as
// runs (value, count): one run per segment interior or per stretch of empty bins, and one run of
// count 1 per bin that holds an opportunity or a segment boundary. Stats of the runs are exact.
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "netsim/trace.h"
#include "netsim/trace_data.h"

namespace kvstream::netsim {

namespace {

using Runs = std::vector<std::pair<double, std::uint64_t>>;  // (Mbit/s, bins)

// Capacity (integrated rate units) over [0, t] of one period of a rate trace, t in [0, period].
u128 fluid_acc(const Trace::Data& d, TimeNs t) {
  if (t >= d.period) return d.acc.back();
  const auto it = std::upper_bound(d.start.begin(), d.start.end(), t);
  const std::size_t i = static_cast<std::size_t>(it - d.start.begin()) - 1;
  return d.acc[i] + u128(d.rate[i]) * u128(t - d.start[i]);
}

Runs fluid_runs(const Trace::Data& d, std::uint64_t whole) {
  Runs runs;
  const std::size_t n = d.start.size();
  const auto bin_mbps = [&](std::uint64_t b) {
    const TimeNs a = static_cast<TimeNs>(b) * kNsPerSec;
    // bits = acc / 1e9; Mbit/s over one second = bits / 1e6
    return static_cast<double>(fluid_acc(d, a + kNsPerSec) - fluid_acc(d, a)) / 1e15;
  };
  std::uint64_t last_boundary_bin = UINT64_MAX;
  for (std::size_t i = 0; i < n; ++i) {
    const TimeNs s = d.start[i], e = i + 1 < n ? d.start[i + 1] : d.period;
    // a bin that holds this segment's start strictly inside is a boundary bin
    if (s % kNsPerSec != 0) {
      const auto b = static_cast<std::uint64_t>(s / kNsPerSec);
      if (b < whole && b != last_boundary_bin) runs.emplace_back(bin_mbps(b), 1);
      last_boundary_bin = b;
    }
    const auto first = static_cast<std::uint64_t>((s + kNsPerSec - 1) / kNsPerSec);
    const auto end = std::min<std::uint64_t>(static_cast<std::uint64_t>(e / kNsPerSec), whole);
    if (end > first) runs.emplace_back(static_cast<double>(d.rate[i]) / 1e6, end - first);
  }
  return runs;
}

Runs opportunity_runs(const Trace::Data& d, std::uint64_t whole) {
  Runs runs;
  std::uint64_t nonempty = 0, prev_cum = 0;
  std::size_t i = 0;
  while (i < d.offset.size()) {
    const auto b = static_cast<std::uint64_t>(d.offset[i] / kNsPerSec);
    std::uint64_t bytes = 0;
    for (; i < d.offset.size() && static_cast<std::uint64_t>(d.offset[i] / kNsPerSec) == b; ++i) {
      bytes += d.cum[i] - prev_cum;
      prev_cum = d.cum[i];
    }
    if (b == 0) bytes -= d.skip;  // the previous loop's final instant is not in loop 0
    if (b >= whole) continue;
    runs.emplace_back(8.0 * static_cast<double>(bytes) / 1e6, 1);
    ++nonempty;
  }
  if (whole > nonempty) runs.emplace_back(0.0, whole - nonempty);
  return runs;
}

}  // namespace

TraceStats Trace::stats() const {
  TraceStats s;
  const auto& d = *d_;
  s.duration_s = ns_to_seconds(d.period);
  s.mean_mbps = mean_bps() / 1e6;
  const auto whole = static_cast<std::uint64_t>(d.period / kNsPerSec);
  Runs runs;
  if (whole == 0) runs.emplace_back(s.mean_mbps, 1);
  else runs = d.fluid ? fluid_runs(d, whole) : opportunity_runs(d, whole);
  std::uint64_t bins = 0;
  double sum = 0, mn = runs.front().first, mx = runs.front().first;
  for (const auto& [v, c] : runs) {
    bins += c;
    sum += v * static_cast<double>(c);
    mn = std::min(mn, v);
    mx = std::max(mx, v);
  }
  const double mean = sum / static_cast<double>(bins);
  double var = 0;
  for (const auto& [v, c] : runs) var += (v - mean) * (v - mean) * static_cast<double>(c);
  var /= static_cast<double>(bins);
  s.bins = bins;
  s.min_mbps = mn;
  s.max_mbps = mx;
  s.cv = mean > 0 ? std::sqrt(var) / mean : 0;
  return s;
}

}  // namespace kvstream::netsim
