#include "bench/model_bench.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>

namespace kvstream::model {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

PrefillBench bench_prefill(const Model& m, std::span<const int32_t> tokens, int repeats) {
  if (tokens.size() < 2) throw std::invalid_argument("bench_prefill: need at least 2 tokens");
  if (repeats < 1) throw std::invalid_argument("bench_prefill: repeats must be >= 1");
  PrefillBench b;
  b.tokens = tokens.size();
  b.repeats = repeats;
  b.batched_s = b.stepwise_s = b.score_s = 1e300;
  b.identical_kv = true;
  const size_t cont = std::min<size_t>(64, tokens.size() - 1);
  b.score_context = tokens.size() - cont;
  b.score_tokens = cont;
  KvCache context = m.new_cache();
  m.prefill(context, tokens.first(b.score_context), LogitsMode::None);
  for (int r = 0; r < repeats; ++r) {  // interleaved so that machine noise hits both variants
    KvCache batched = m.new_cache();
    auto t0 = std::chrono::steady_clock::now();
    m.prefill(batched, tokens, LogitsMode::Last);
    b.batched_s = std::min(b.batched_s, seconds_since(t0));

    KvCache stepwise = m.new_cache();
    t0 = std::chrono::steady_clock::now();
    // Same work as the batched call (logits of the last position only), one token per call.
    for (size_t i = 0; i < tokens.size(); ++i)
      m.prefill(stepwise, tokens.subspan(i, 1), i + 1 == tokens.size() ? LogitsMode::Last : LogitsMode::None);
    b.stepwise_s = std::min(b.stepwise_s, seconds_since(t0));
    b.identical_kv = b.identical_kv && batched.k == stepwise.k && batched.v == stepwise.v;

    t0 = std::chrono::steady_clock::now();
    const ScoreResult s = m.score_continuation(context, tokens.subspan(b.score_context));
    b.score_s = std::min(b.score_s, seconds_since(t0));
    b.score_perplexity = s.perplexity;
  }
  return b;
}

}  // namespace kvstream::model
