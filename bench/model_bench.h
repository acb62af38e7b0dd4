// Benchmarks of the reference model, measured side by side in one run (used by
// `kvstream bench model` and scripts/bench_model.sh). Timing only; no correctness claims.
#pragma once
#include <cstdint>
#include <span>
#include <string>

#include "model/model.h"

namespace kvstream::model {

struct PrefillBench {
  size_t tokens = 0;      // context length prefilled
  int repeats = 0;        // timed repetitions of each variant (best time kept)
  double batched_s = 0;   // one prefill() over all tokens
  double stepwise_s = 0;  // prefill() one token per call (logits of the last one only)
  // score_continuation() of the last score_tokens tokens given the KV of the others (the codec's
  // quality measurement): its time and the perplexity it found.
  size_t score_context = 0, score_tokens = 0;
  double score_s = 0;
  double score_perplexity = 0;
  double batched_tok_s() const { return tokens / batched_s; }
  double stepwise_tok_s() const { return tokens / stepwise_s; }
  double score_per_s() const { return 1.0 / score_s; }
  double speedup() const { return stepwise_s / batched_s; }
  bool identical_kv = false;  // batched and token-by-token caches are bitwise equal
};

// Prefills `tokens` both ways `repeats` times, interleaved, keeping the best time of each; also
// times score_continuation() of the last min(64, n-1) tokens given the KV of the rest.
PrefillBench bench_prefill(const Model& m, std::span<const int32_t> tokens, int repeats = 5);

}  // namespace kvstream::model
