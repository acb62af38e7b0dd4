// Serving benchmark (`kvstream bench serve`, scripts/bench_scaleout.sh): many concurrent protocol
// clients fetch contexts chunk by chunk from one or more senders and measure what serving costs —
// chunk throughput and per-chunk service latency (CHUNK_GET written -> its CHUNK_DATA complete) —
// while checking every byte against the original containers. Benchmark code: the product's
// receiver is streamer/receiver.h; this client does not decode (so that decode CPU does not
// bound what it measures) and follows the receiver's rule for a blob it cannot use: an empty or
// wrong-size KV blob is fetched once more as text.
//
// A session = connect to the next sender (round robin) -> HELLO, REQUEST a context (session k:
// sender k mod S, context (k / S) mod C, so that every sender serves every context) -> MANIFEST -> CHUNK_GET every chunk in order at `level` with up to `window` requests
// outstanding -> END. Sessions run back to back on `receivers` concurrent clients until
// `duration_s` has passed (no new session starts after it) or `sessions` have started.
// Verification (when `expected` has the context): every KV blob must equal the container's blob
// of that (chunk, level), every text blob the container's text blob; a chunk that differs is
// counted in wrong_kv (the session still completes), and the fetch would have been a wrong cache.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "codec/container.h"

namespace kvstream::store {

struct ServeBenchOptions {
  std::vector<std::pair<std::string, uint16_t>> senders;
  std::vector<std::string> contexts;
  size_t receivers = 32;
  double duration_s = 10;
  size_t sessions = 0;       // 0: by duration only
  int level = 0;             // manifest level index requested for every chunk; -1: text
  size_t window = 1;         // CHUNK_GETs outstanding per session
  double timeout_s = 10;     // a session with no byte for this long fails
  std::map<std::string, std::shared_ptr<const codec::ContainerReader>> expected;
  std::atomic<uint64_t>* chunks_done = nullptr;  // live progress counter (failover tests)
};

struct ServeBenchResult {
  uint64_t sessions_started = 0, sessions_ok = 0, sessions_failed = 0;
  uint64_t chunks = 0, kv_chunks = 0, text_fallbacks = 0, text_chunks = 0, wrong_kv = 0, unverified = 0;
  uint64_t bytes = 0;
  double wall_s = 0, client_cpu_s = 0;  // client_cpu_s: this process's CPU time (user + system)
  std::vector<double> latency_s;  // one per CHUNK_GET answered (fallback re-fetches included)
  std::vector<std::string> errors;  // the first failures, for the report
  std::map<std::string, uint64_t> chunks_per_sender;
  nlohmann::json to_json() const;  // percentiles, rates, counts
};

ServeBenchResult run_serve_bench(const ServeBenchOptions& opt);

}  // namespace kvstream::store
