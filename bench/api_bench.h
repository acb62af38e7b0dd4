// api_bench.h: `kvstream bench api` — the cost of fetching through the public API into a paged
// fp16 layout (kvstream::Transfer) against today's receiver filling its own fp32 KvCache
// (streamer::receive), side by side: one sender (and, with a trace, a fresh trace-shaped relay per
// fetch), the two alternating in order rep by rep, each fetch of the same context with the same
// policy and a warm profile cache. TTFT is the receiver's own (request sent -> every chunk ready:
// for the API that includes writing the chunk into the layout); wall is the call's duration.
//
// Contract: returns {"config", "runs": [...], "summary"} (summary: medians, the median of the
// per-rep TTFT ratios api / receiver, the median "tail" TTFT - last byte of each, and
// "goal_ttft_within_5pct"). Throws what the fetches throw.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace kvstream::bench {

struct ApiBenchOptions {
  std::string dir;                 // served directory (CONTEXT.kvs + its profile)
  std::string context = "story";
  std::string policy = "fixed:q8";
  double slo_ms = 10000;
  int reps = 10;
  uint32_t block_size = 16;
  std::string trace;               // empty: plain loopback
  double delay_ms = 0;             // one-way relay delay (with a trace)
  std::string profile_dir;         // receivers' profile cache (warmed before the first rep)
};

nlohmann::json run_api_bench(const ApiBenchOptions& opt);

}  // namespace kvstream::bench
