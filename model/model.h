// Model: the llama-family reference model (llama2.c-exact forward pass on CPU) that turns text
// into a real KV cache, recomputes KV for text given earlier KV, and scores continuations.
//
// Contract:
// - A KvCache made by new_cache() holds token t at position t. prefill()/step()/recompute() run
//   `tokens` at positions kv.num_tokens(), ... and append their K/V rows (keys pre- or post-RoPE as
//   kv.keys_pre_rope says; attention always uses post-RoPE keys, rotating pre-RoPE ones on the fly).
// - Numerics follow llama2.c run.c (RMSNorm eps 1e-5, RoPE from codec/rope.h, GQA, SwiGLU,
//   float accumulation in run.c's order), so batched prefill equals token-by-token bit for bit.
// - All methods are const and keep their scratch in thread_local storage: one Model may be used
//   from many threads at once. Everything is single-threaded per call.
// - Bad input (token id outside the vocabulary, a cache whose shape/model/theta does not match)
//   throws std::invalid_argument; nothing is appended then. Positions past config().seq_len are
//   allowed (RoPE extrapolates) but the model was not trained for them.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "codec/kv_cache.h"
#include "model/checkpoint.h"
#include "model/tokenizer.h"

namespace kvstream::model {

enum class LogitsMode {
  None,  // no logits (recompute)
  Last,  // logits of the last position only: vocab floats
  All,   // logits of every position, row-major [n][vocab]
};

struct ScoreResult {
  // For i in [0, n-1): logprob[i] = ln p(tokens[i+1] | kv, tokens[0..i]); top1[i] = argmax token
  // (lowest id on ties) of the distribution at that position.
  std::vector<double> logprob;
  std::vector<int32_t> top1;
  double sum_logprob = 0.0;  // sum of logprob
  double perplexity = 1.0;   // exp(-sum_logprob / count); 1 when nothing was scored
  size_t count() const { return logprob.size(); }
};

// Fraction of positions where a and b predict the same top-1 token (over the shorter length;
// 1 when both are empty).
double top1_agreement(const ScoreResult& a, const ScoreResult& b);

struct GenerateResult {
  std::vector<int32_t> tokens;  // prompt followed by the generated tokens
  size_t num_prompt = 0;        // how many of tokens are the prompt
  bool stopped_on_bos = false;  // generation sampled BOS (=1) and stopped, as run.c does
  std::vector<int32_t> generated() const {
    return {tokens.begin() + static_cast<std::ptrdiff_t>(num_prompt), tokens.end()};
  }
};

class Model;
// Throws std::invalid_argument unless the tokenizer's vocabulary size equals the model's.
void check_tokenizer(const Model& m, const Tokenizer& t);

class Model {
 public:
  // Loads a llama2.c checkpoint (see checkpoint.h); name defaults to the file stem.
  static Model load(const std::string& path, std::string name = {});
  static Model from_checkpoint(const Checkpoint& ck, std::string name);

  const Config& config() const { return config_; }
  const std::string& name() const { return name_; }
  KvShape kv_shape() const { return {config_.n_layers, config_.n_kv_heads, config_.head_dim()}; }
  // An empty cache for this model (model_name, rope_theta and the key convention filled in).
  KvCache new_cache(bool pre_rope = false) const;
  // Throws std::invalid_argument unless kv fits this model (shape, rope_theta, validate()).
  void check_cache(const KvCache& kv) const;

  // Batched forward over `tokens` at positions kv.num_tokens()...; appends their K/V to kv.
  // Returns logits per `mode` (empty for None).
  std::vector<float> prefill(KvCache& kv, std::span<const int32_t> tokens,
                             LogitsMode mode = LogitsMode::Last) const;
  // One token: prefill(kv, {token}) returning its vocab logits.
  std::vector<float> step(KvCache& kv, int32_t token) const;
  // The logits step(kv, token) returns, bit for bit, without modifying or copying kv (the token's
  // K/V rows go to per-thread scratch): a receiver's first token over the cache it just filled.
  std::vector<float> next_logits(const KvCache& kv, int32_t token) const;
  // prefill() without logits: rebuilds the KV of a text chunk given the KV of earlier chunks.
  void recompute(KvCache& kv, std::span<const int32_t> tokens) const;
  // Teacher-forced scoring of `tokens` fed at positions kv.num_tokens()...; kv is not modified.
  ScoreResult score(const KvCache& kv, std::span<const int32_t> tokens) const;
  // Scores every token of a continuation of kv's text: logprob[i] = ln p(continuation[i] | kv's
  // tokens, continuation[0..i)). A KV cache does not carry its last token's next-token logits, so
  // that token's own K/V row is recomputed from its id (rows 0..P-2 come from kv, unmodified).
  // kv must hold at least one token.
  ScoreResult score_continuation(const KvCache& kv, std::span<const int32_t> continuation) const;

  // run.c generate(): forward at positions 0..steps-1 (steps counts the prompt too; 0 or more
  // than seq_len means seq_len), prompt tokens forced, the rest sampled: greedy (argmax) when
  // temperature == 0, else softmax(logits / temperature) with top-p nucleus sampling (topp in
  // (0,1); otherwise plain multinomial) driven by run.c's xorshift RNG seeded with `seed`
  // (0 is replaced by a fixed nonzero constant). Stops early if BOS is sampled.
  // prompt must be non-empty (start it with BOS = 1).
  GenerateResult generate(std::span<const int32_t> prompt, int steps, float temperature = 0.0f,
                          uint64_t seed = 42, float topp = 0.9f) const;
  // Continues the text held in a KV cache (e.g. one received over the network): up to new_tokens
  // tokens, sampled as generate() does, stopping early on BOS or at seq_len. The context's last
  // token is re-fed to get the first prediction (its K/V row is recomputed); rows 0..P-2 are used
  // as they are. Result: tokens = context tokens + generated, num_prompt = context size.
  GenerateResult generate_from(const KvCache& context, int new_tokens, float temperature = 0.0f,
                               uint64_t seed = 42, float topp = 0.9f) const;

 private:
  struct Layer {
    // Weights transposed to [in][out] so that matmuls stream contiguous output rows.
    std::vector<float> rms_att, wqkv_t, wo_t, rms_ffn, w13_t, w2_t;
  };
  ScoreResult score_impl(const KvCache& kv, size_t past_tokens, std::span<const int32_t> tokens) const;
  void check_tokens(std::span<const int32_t> tokens) const;  // every id inside the vocabulary
  // forward()'s new_k/new_v for n tokens whose K/V rows are not kept: per-thread scratch, one
  // buffer reused by every layer (only the layer being computed reads its rows).
  struct ScratchRows {
    std::vector<float*> k, v;
  };
  ScratchRows scratch_rows(size_t n) const;
  void forward(const KvCache& past, size_t past_tokens, std::span<const int32_t> tokens,
               float* const* new_k, float* const* new_v, bool store_pre_rope, LogitsMode mode, float* logits,
               ScoreResult* score) const;

  Config config_;
  std::string name_;
  std::vector<float> embedding_;   // [vocab][dim]
  std::vector<float> cls_t_;       // classifier transposed: [dim][vocab]
  std::vector<float> rms_final_;
  std::vector<Layer> layers_;
  std::vector<float> rope_cos_, rope_sin_;  // [seq_len][head_dim/2], run.c's float values
};

}  // namespace kvstream::model
