// kv_quality.h: how much a lossy KV codec hurts the model, measured with the model itself, and the
// profiler that builds a codec profile (codec/profile.h) from calibration text.
//
// Quality of a codec on one context: prefill the context's first n-1 tokens, then teacher-force
// [last context token] + continuation with score() twice — once with the original KV and once with
// the codec's round-tripped KV — and compare: perplexity change in % and the fraction of
// continuation positions whose top-1 token is unchanged ("greedy agreement").
//
// Contract: contexts are cut from any text: from a byte range [begin_frac, end_frac) of it, BOS +
// tokens; calibration and evaluation use disjoint ranges (kCalibrationRange / kEvalRange), so a
// profile never sees evaluation text. Throws kvstream::Error (kInvalidArgument) naming the text on
// unusable input (text too short, bad sizes), std::invalid_argument / std::runtime_error otherwise.
//
// Where contexts start (any text, with or without blank lines): the range is split into `count`
// equal byte slots; context i starts in slot i, at its first blank line (a story or paragraph
// boundary), else its first line break (a chat turn, a transcript line), else its first space
// (a word boundary), else at the slot's first byte that begins a UTF-8 character; leading white
// space is skipped. Every context starts in its own slot, so no two start at the same place even
// when boundaries are rare; a context may run past its slot (and past end_frac) when the slots
// are shorter than a context.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "codec/container.h"
#include "codec/profile.h"
#include "codec/progress.h"
#include "model/file_bytes.h"  // read_text_file
#include "model/model.h"
#include "model/tokenizer.h"

namespace kvstream::model {

struct TextRange {
  double begin_frac = 0, end_frac = 1;
};
inline constexpr TextRange kCalibrationRange{0.0, 0.35};  // profile: tables, sensitivities, ladder
inline constexpr TextRange kEvalRange{0.5, 1.0};          // eval: never seen by a profile

struct EvalContext {
  std::vector<int32_t> context;       // BOS + context tokens
  std::vector<int32_t> continuation;  // scored tokens following the context
};

// `count` contexts evenly spread over `range` of the text (rule above); `text_name` (e.g. its
// file) names it in errors.
std::vector<EvalContext> cut_contexts(const Tokenizer& tok, const std::string& text, TextRange range,
                                      int count, int context_tokens, int continuation_tokens,
                                      const std::string& text_name = "the text");

// A prefilled context: its KV (post-RoPE, positions 0..) and the baseline score.
struct PreparedContext {
  EvalContext ctx;
  KvCache kv;               // KV of context[0 .. n-1)
  std::vector<int32_t> scored;  // context.back() + continuation
  ScoreResult base;
};
// `progress` (may be empty) counts prefilled contexts as stage "prefill".
std::vector<PreparedContext> prepare_contexts(const Model& m, const std::vector<EvalContext>& ctxs,
                                              int threads = 0, const ProgressFn& progress = {});

// A codec round trip: takes the original KV, returns the decoded KV and adds the bytes it used.
using RoundTrip = std::function<KvCache(const KvCache& kv, size_t& bytes)>;

struct QualityResult {
  double ppl_delta_pct = 0;     // mean over contexts of 100 * (ppl_decoded / ppl_original - 1)
  double greedy_agreement = 0;  // mean over contexts
  double bits_per_value = 0;    // total bytes * 8 / total K/V values
  size_t bytes = 0;
  int contexts = 0;
  std::vector<double> ppl_pct_per_context;  // the per-context values behind the two means
  std::vector<double> agreement_per_context;
};
QualityResult measure_quality(const Model& m, const std::vector<PreparedContext>& prepared,
                              const RoundTrip& codec, int threads = 0);

// Round trip through the chunk codec at one method/level with `chunk_tokens`-token chunks.
RoundTrip chunk_round_trip(const codec::Profile* profile, codec::Method method, int level,
                           uint32_t chunk_tokens = 64);

// ---- profiling ----
struct ProfileOptions {
  int calibration_contexts = 32;  // tables and means
  int selection_contexts = 48;    // sensitivities and ladder quality (disjoint from the above)
  // Ladder selection margin: a candidate meets a target only if mean +- z * sd * sqrt(1/n_sel +
  // 1/margin_eval_contexts) does (z = margin_z), i.e. a fresh eval of that many contexts is
  // expected to meet it too, not just the selection set's mean.
  double margin_z = 1.64;
  float min_weight = 0.05f;        // floor of a lane's sensitivity weight (median 1): largest step = base / floor
  int margin_eval_contexts = 32;
  int context_tokens = 384;
  int continuation_tokens = 96;
  uint32_t chunk_tokens = 64;
  int scale_bits = 9;              // 2^9-entry slot tables: 2 KiB per lane, 64 KiB per (layer, kind) block;
                                   // decodes 10-17 % faster than 2^10 at 0.3-0.7 % more bits (RESULTS)
  int threads = 0;
  bool verbose = false;           // progress on stderr
  // How per-lane steps are weighted: "sensitivity" (noise injection through the model, the
  // default), "rms" (step proportional to the lane's spread: plain per-channel scaling) or
  // "uniform" (one step for every lane).
  std::string weighting = "sensitivity";
  // Put layer 0's per-token K/V table into the profile (add_token_table), so that quant blobs send
  // token ids instead of coding layer 0. Off: layer 0 is quantized like every other layer.
  bool token_table = true;
  std::string text_name = "the text";  // names the text in errors (e.g. its file)
  ProgressFn progress;                 // stages "prefill calibration", "prefill selection",
                                       // "sensitivities", "candidates" (codec/progress.h)
};
// Fills p.token_vocab / p.token_kv with layer 0's pre-RoPE K and V of every token id (a one-token
// forward pass at position 0 per id; layer 0 sees no position before RoPE, so these are the rows
// any context produces for that id).
void add_token_table(const Model& m, codec::Profile& p);
// Runs the whole profiler (see kv_quality.cpp): per-lane sensitivities by perturbation, a grid of
// candidate step sizes, and a ladder of named levels picked from the measured size/quality front.
codec::Profile build_profile(const Model& m, const Tokenizer& tok, const std::string& text,
                             const ProfileOptions& opt);

// ---- evaluation (kvstream eval) ----
struct EvalEntry {
  std::string name;
  std::string kind;  // "level" | "baseline"
  QualityResult q;
  double ratio_vs_q8 = 0;
};
struct EvalReport {
  int contexts = 0;
  std::vector<EvalEntry> entries;  // ladder levels best -> smallest, then baselines, then text
};
struct EvalOptions {
  int contexts = 16;
  int context_tokens = 384;     // BOS included
  int continuation_tokens = 96;
  uint32_t chunk_tokens = 64;
  int threads = 0;              // 0 = all cores
  TextRange range = kEvalRange;
  std::string text_name = "the text";  // names the text in errors (e.g. its file)
  ProgressFn progress;                 // stages "prefill", "entries" (codec/progress.h)
};
EvalReport evaluate_codec(const Model& m, const Tokenizer& tok, const codec::Profile& profile,
                          const std::string& text, const EvalOptions& opt);

}  // namespace kvstream::model
