// netsim/trace_data.h — the representation behind Trace (internal to netsim: trace.cpp parses and
// queries it, trace_stats.cpp summarises it). See trace.h for the contract.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "netsim/trace.h"

namespace kvstream::netsim {

using u128 = unsigned __int128;

// Capacity of a rate segment is integrated in "bit-nanoseconds per second": rate (bits/s) x
// duration (ns). One byte is 8e9 of these. u128 holds 10^13 bit/s x 10^17 ns with room to spare.
constexpr u128 kAccPerByte = u128(8) * 1'000'000'000u;

struct Trace::Data {
  std::string name;
  TraceFormat format = TraceFormat::kMahimahi;
  double scale = 1.0;
  TimeNs period = 0;
  TimeNs path_delay = 0;
  // Opportunity form (Mahimahi, const):
  std::vector<TimeNs> offset;        // strictly increasing, in [0, period)
  std::vector<std::uint64_t> cum;    // inclusive prefix sum of scaled bytes, cum.back() = total
  // Bytes at offset 0 that belong to the previous loop's final instant (a last timestamp equal to
  // the period): they recur at k*period for k >= 1 but do not exist at t = 0 of the first loop.
  std::uint64_t skip = 0;
  // Rate form (cooked): segment i has rate[i] bits/s over [start[i], start[i+1]) (start[n] =
  // period); acc[i] = capacity before segment i (acc has n+1 entries).
  bool fluid = false;
  std::vector<TimeNs> start;
  std::vector<std::uint64_t> rate;
  std::vector<u128> acc;
  std::uint64_t fluid_total = 0;     // floor(acc[n] / kAccPerByte)
  std::uint64_t total() const { return fluid ? fluid_total : (cum.empty() ? 0 : cum.back()); }
  // Capacity in bytes of offsets [0, r] of one period (r in [0, period)), skip not applied.
  std::uint64_t in_period_bytes(TimeNs r) const;
  // Earliest offset r (in (0, period]) with in_period_bytes(r) >= rem, rem in [1, total()].
  TimeNs in_period_time(std::uint64_t rem) const;
};

}  // namespace kvstream::netsim
