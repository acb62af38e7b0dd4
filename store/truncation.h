// Decoupled positional encoding (AttentionStore): the store keeps keys BEFORE RoPE, so when a
// conversation overflows the model's window the oldest tokens can be cut from a stored cache and
// RoPE re-applied at the tokens' new positions, instead of recomputing the kept text.
//
// truncate_context(kv, drop) does that: kv must hold pre-RoPE keys; the result holds rows
// [drop, n) with keys rotated for positions 0.. (post-RoPE, ready for attention) or left pre-RoPE
// when keep_pre_rope. std::invalid_argument for post-RoPE input, std::out_of_range for drop > n.
//
// truncation_eval() measures it with the real model: contexts (BOS + context_tokens, cut from the
// text's evaluation range, disjoint from the profiler's calibration range) followed by a next turn
// of next_tokens, with context + next turn > window. The oldest ratio * window context tokens are
// dropped and the next turn's perplexity is measured (teacher-forced) with
//   (a) truncate + re-RoPE: the stored pre-RoPE KV of the kept tokens, rotated at new positions;
//   (b) recompute: fresh KV of the kept text at positions 0..;
//   (c) naive: the kept rows of a post-RoPE cache, keys still rotated for their old positions;
//   (d) no truncation: the whole context, positions beyond the window (for reference).
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "codec/kv_cache.h"
#include "model/model.h"
#include "model/tokenizer.h"

namespace kvstream::store {

KvCache truncate_context(const KvCache& kv, size_t drop, bool keep_pre_rope = false);

struct TruncationEvalOptions {
  int contexts = 16;
  int context_tokens = 480;  // plus BOS
  int next_tokens = 96;
  double ratio = 0.5;        // dropped = ratio * window tokens
};

struct TruncationRow {
  std::string method;
  double ppl = 0;                    // pooled over all contexts' next-turn tokens
  double mean_abs_ppl_diff = 0;      // mean over contexts of |ppl - ppl(recompute)|
  double top1_agreement = 0;         // mean over contexts, vs recompute
};

struct TruncationEvalResult {
  int contexts = 0, window = 0;
  size_t context_tokens = 0, dropped = 0, kept = 0, next_tokens = 0;
  std::vector<TruncationRow> rows;
  nlohmann::json to_json() const;
};

TruncationEvalResult truncation_eval(const model::Model& m, const model::Tokenizer& tok,
                                     const std::string& text, const TruncationEvalOptions& opt);

}  // namespace kvstream::store
