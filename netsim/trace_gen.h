// netsim/trace_gen.h — seeded synthetic link families (`kvstream netsim gen`), written as cooked
// traces (rate segments), so a family can be swept next to real traces.
//
// Contract
// - Rates are relative to `kv_mbps`, "the KV rate": the link rate at which fetching the context's
//   q8 KV cache takes as long as recomputing it from text (stories260K, 448 tokens, 2000 tok/s:
//   153,892 B x 8 / 0.224 s = 5.5 Mbit/s). A family says how the link relates to that rate over time:
//   * fast:       10 - 1000x the KV rate, +-10 % noise per 50 ms;
//   * slow-start: 1 - 4 s at 0.01 - 0.05x, then doubling every 0.1 - 0.4 s up to 0.5 - 30x;
//   * steps:      a base of 0.3 - 30x with step drops (to 1 - 20 % of the base, 0.2 - 2 s) and
//                 outages (0.05 - 0.5 s) every 0.1 - 0.6 s on average, the first in the first 0.4 s;
//   * long-rtt:   0.3 - 100x with +-15 % noise, and a path of 80 - 250 ms one-way delay (the
//                 trace's "# kvstream: delay_ms=" directive, added to any configured delay);
//   * jitter:     0.5 - 30x on average, every 20 ms a log-normal factor (sigma 0.8 - 1.5, mean 1);
//   * markov:     a 4-state Markov chain (good 3 - 30x, fair 0.5 - 3x, poor 0.03 - 0.3x, outage)
//                 stepped every 50 ms, +-30 % noise within a state (cellular-like).
//   Each draw's range is log-uniform. The first line of the file is a comment naming the family,
//   seed and drawn parameters.
// - Deterministic: the same (family, seed, kv_mbps, duration) gives the same bytes on every
//   machine (a 64-bit Mersenne twister, with uniform and normal draws written out here rather
//   than the standard library's implementation-defined distributions).
// - Throws std::invalid_argument for an unknown family or non-positive kv_mbps / duration.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kvstream::netsim {

struct GenOptions {
  std::string family;
  std::uint64_t seed = 1;
  double kv_mbps = 5.5;
  double duration_s = 30;
};

// The trace's file content (cooked format).
std::string generate_trace(const GenOptions& options);
// The families generate_trace knows, in a fixed order.
const std::vector<std::string>& link_families();

}  // namespace kvstream::netsim
