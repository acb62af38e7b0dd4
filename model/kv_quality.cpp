// Codec quality measured with the model, and the profiler (see kv_quality.h).
#include "model/kv_quality.h"

#include <algorithm>
#include <cstdlib>
#include <atomic>
#include <cmath>
#include <fstream>
#include <iostream>
#include <iterator>
#include <mutex>
#include <random>
#include <stdexcept>

#include "codec/kv_profile.h"
#include "codec/rope.h"
#include "codec/thread_pool.h"
#include "kvstream/error.h"

namespace kvstream::model {

using codec::Kind;
using codec::Method;
using codec::parallel_for;

namespace {
// Where the context cut at byte `from` starts (see cut_contexts in kv_quality.h): the first blank
// line in [from, until), else the first line break there, else the first space or tab, else
// `from` moved off UTF-8 continuation bytes, so that no context starts inside a character.
size_t boundary_at_or_after(const std::string& text, size_t from, size_t until) {
  if (from == 0) return 0;
  const size_t blank = std::min(text.find("\n\n", from), text.find("\n\r\n", from));
  if (blank < until) return blank;
  if (const size_t line = text.find('\n', from); line < until) return line;
  if (const size_t space = text.find_first_of(" \t", from); space < until) return space;
  size_t s = from;
  while (s < until && (uint8_t(text[s]) & 0xC0) == 0x80) ++s;
  return s;
}
}  // namespace

std::vector<EvalContext> cut_contexts(const Tokenizer& tok, const std::string& text, TextRange range,
                                      int count, int context_tokens, int continuation_tokens,
                                      const std::string& text_name) {
  if (count <= 0 || context_tokens < 2 || continuation_tokens < 1)
    throw Error(ErrorCode::kInvalidArgument, "cut_contexts: need count > 0, context >= 2, continuation >= 1");
  if (!(range.begin_frac >= 0 && range.begin_frac < range.end_frac && range.end_frac <= 1))
    throw Error(ErrorCode::kInvalidArgument, "cut_contexts: the text range must satisfy 0 <= begin < end <= 1");
  const size_t lo = size_t(range.begin_frac * double(text.size()));
  const size_t hi = size_t(range.end_frac * double(text.size()));
  const size_t need = size_t(context_tokens + continuation_tokens);
  auto too_short = [&](int i, size_t at, const std::string& why) {
    return Error(ErrorCode::kInvalidArgument,
                 text_name + " (" + std::to_string(text.size()) + " bytes) is too short for " + std::to_string(count) +
                     " contexts of " + std::to_string(need) + " tokens between " +
                     std::to_string(int(range.begin_frac * 100)) + "% and " + std::to_string(int(range.end_frac * 100)) +
                     "% of it: context " + std::to_string(i + 1) + " starts at byte " + std::to_string(at) + " and " +
                     why + "; give more text, or fewer or shorter contexts");
  };
  std::vector<EvalContext> out;
  for (int i = 0; i < count; ++i) {
    const size_t slot = lo + (hi - lo) * size_t(i) / size_t(count);
    const size_t next_slot = lo + (hi - lo) * size_t(i + 1) / size_t(count);
    const size_t start = text.find_first_not_of(" \n\r\t", boundary_at_or_after(text, slot, next_slot));
    if (start == std::string::npos || start >= hi) throw too_short(i, slot, "only white space follows in the range");
    std::vector<int32_t> ids;
    for (size_t chars = need * 6; ; chars *= 2) {
      ids = tok.encode(text.substr(start, chars), /*bos=*/true);
      if (ids.size() >= need) break;
      if (start + chars >= text.size())
        throw too_short(i, start, "the text after it holds only " + std::to_string(ids.size()) + " tokens");
    }
    EvalContext c;
    c.context.assign(ids.begin(), ids.begin() + context_tokens);
    c.continuation.assign(ids.begin() + context_tokens, ids.begin() + ptrdiff_t(need));
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<PreparedContext> prepare_contexts(const Model& m, const std::vector<EvalContext>& ctxs,
                                              int threads, const ProgressFn& progress) {
  std::vector<PreparedContext> out(ctxs.size());
  ProgressCounter done(progress, "prefill", ctxs.size());
  parallel_for(ctxs.size(), threads, [&](size_t i) {
    PreparedContext& p = out[i];
    p.ctx = ctxs[i];
    p.kv = m.new_cache(false);
    m.prefill(p.kv, std::span(p.ctx.context).first(p.ctx.context.size() - 1), LogitsMode::None);
    p.scored.push_back(p.ctx.context.back());
    p.scored.insert(p.scored.end(), p.ctx.continuation.begin(), p.ctx.continuation.end());
    p.base = m.score(p.kv, p.scored);
    done.step();
  });
  return out;
}

QualityResult measure_quality(const Model& m, const std::vector<PreparedContext>& prepared,
                              const RoundTrip& codec, int threads) {
  std::vector<double> dppl(prepared.size()), agree(prepared.size());
  std::vector<size_t> bytes(prepared.size(), 0);
  size_t values = 0;
  for (const auto& p : prepared) values += p.kv.num_tokens() * p.kv.values_per_token();
  parallel_for(prepared.size(), threads, [&](size_t i) {
    const PreparedContext& p = prepared[i];
    const KvCache kv = codec(p.kv, bytes[i]);
    const ScoreResult s = m.score(kv, p.scored);
    dppl[i] = 100.0 * (s.perplexity / p.base.perplexity - 1.0);
    agree[i] = top1_agreement(p.base, s);
    if (std::getenv("KVSTREAM_EVAL_VERBOSE"))
      std::cerr << "context " << i << ": ppl " << p.base.perplexity << " -> " << s.perplexity << ", top-1 " << agree[i] << "\n";
  });
  QualityResult q;
  q.contexts = int(prepared.size());
  for (size_t i = 0; i < prepared.size(); ++i)
    q.ppl_delta_pct += dppl[i], q.greedy_agreement += agree[i], q.bytes += bytes[i];
  q.ppl_delta_pct /= double(prepared.size());
  q.ppl_pct_per_context = dppl;
  q.agreement_per_context = agree;
  q.greedy_agreement /= double(prepared.size());
  q.bits_per_value = 8.0 * double(q.bytes) / double(values);
  return q;
}

RoundTrip chunk_round_trip(const codec::Profile* profile, Method method, int level, uint32_t chunk_tokens) {
  auto tables = std::make_shared<codec::LevelDecodeTables>();
  if (method == Method::Quant) *tables = codec::build_decode_tables(*profile, level);
  codec::EncodeOptions eo;
  if (method == Method::Quant) eo.profile_hash = tables->profile_hash;
  return [=](const KvCache& kv, size_t& bytes) {
    KvCache out(kv.shape, kv.model_name, kv.rope_theta, false);
    out.resize(kv.num_tokens());
    out.tokens = kv.tokens;
    for (size_t b = 0; b < kv.num_tokens(); b += chunk_tokens) {
      const size_t e = std::min<size_t>(kv.num_tokens(), b + chunk_tokens);
      const auto blob = codec::encode_chunk(kv, b, e, uint32_t(b), method, profile, level, eo);
      bytes += blob.size();
      codec::decode_chunk(blob, profile, out, method == Method::Quant ? tables.get() : nullptr);
    }
    return out;
  };
}

// ---- profiler ----
namespace {

struct Candidate {
  codec::LevelRecipe recipe;
  codec::ProfileLevel level;
  QualityResult q;
};

// Per-lane sensitivity: mean squared change of the continuation's log-probs per unit of squared
// error when uniform noise of rms `alpha * rms[lane]` is added to that lane (pre-RoPE keys) over
// the whole context. Keys' RoPE pairs (2i, 2i+1) share a value (rotation mixes them).
std::vector<float> lane_sensitivity(const Model& m, const std::vector<PreparedContext>& prep,
                                    const codec::LaneStats& st, int threads, bool verbose, float floor,
                                    const ProgressFn& progress) {
  const KvShape s = m.kv_shape();
  const int lanes = codec::lane_count(s), d = s.kv_dim();
  const double alpha = 0.5;
  std::vector<KvCache> pre;
  for (const auto& p : prep) {
    KvCache kv = p.kv;
    rope_remove_from_keys(kv, 0);
    pre.push_back(std::move(kv));
  }
  std::vector<double> sens(lanes, 0);
  ProgressCounter done(progress, "sensitivities", size_t(lanes));
  parallel_for(size_t(lanes), threads, [&](size_t lane) {
    const int layer = int(lane) / (2 * d), kind = (int(lane) / d) % 2, c = int(lane) % d;
    const double sigma = alpha * std::max(1e-6f, st.rms[lane]);
    std::mt19937 rng(uint32_t(lane) * 7919u + 1);
    std::uniform_real_distribution<double> u(-std::sqrt(3.0) * sigma, std::sqrt(3.0) * sigma);
    double acc = 0;
    size_t n = 0;
    for (size_t i = 0; i < pre.size(); ++i) {
      KvCache kv = pre[i];
      auto& x = kind == 0 ? kv.k[layer] : kv.v[layer];
      for (size_t t = 0; t < kv.num_tokens(); ++t) x[t * d + c] += float(u(rng));
      const ScoreResult r = m.score(kv, prep[i].scored);
      for (size_t j = 0; j < r.count(); ++j) {
        const double dl = r.logprob[j] - prep[i].base.logprob[j];
        acc += dl * dl, ++n;
      }
    }
    sens[lane] = acc / double(n) / (sigma * sigma);
    done.step();
  });
  for (int lane = 0; lane < lanes; ++lane)  // RoPE pairs of keys
    if ((lane / d) % 2 == 0 && lane % 2 == 0) sens[lane] = sens[lane + 1] = 0.5 * (sens[lane] + sens[lane + 1]);
  std::vector<float> w(lanes);
  for (int k = 0; k < lanes; ++k) w[k] = float(std::sqrt(std::max(sens[k], 0.0)));
  std::vector<float> sorted = w;
  std::nth_element(sorted.begin(), sorted.begin() + lanes / 2, sorted.end());
  const float med = std::max(sorted[lanes / 2], 1e-12f);
  for (auto& x : w) x = std::max(x / med, floor);  // median 1; floor bounds the largest step
  if (verbose) std::cerr << "profile: sensitivities measured on " << prep.size() << " contexts\n";
  return w;
}

struct Target {
  const char* name;
  double max_ppl_pct, min_agree;
};

double sample_sd(const std::vector<double>& x) {
  if (x.size() < 2) return 0;
  double m = 0, v = 0;
  for (double a : x) m += a;
  m /= double(x.size());
  for (double a : x) v += (a - m) * (a - m);
  return std::sqrt(v / double(x.size() - 1));
}

// Pessimistic ends of the quality a fresh eval is expected to measure: the selection mean moved
// by z standard errors of (selection mean - eval mean), so that one hard context in the
// selection set (large spread) pushes a candidate out instead of only nudging the mean.
struct Bounds {
  double ppl_hi, agree_lo;
};
Bounds quality_bounds(const QualityResult& q, double z, int eval_contexts) {
  const double n = double(std::max<size_t>(1, q.ppl_pct_per_context.size()));
  const double f = z * std::sqrt(1.0 / n + 1.0 / double(std::max(1, eval_contexts)));
  return {std::abs(q.ppl_delta_pct) + f * sample_sd(q.ppl_pct_per_context),
          q.greedy_agreement - f * sample_sd(q.agreement_per_context)};
}

}  // namespace

void add_token_table(const Model& m, codec::Profile& p) {
  const KvShape s = m.kv_shape();
  if (!(p.shape == s)) throw std::invalid_argument("add_token_table: profile is for another model shape");
  const int vocab = m.config().vocab_size;
  const size_t d = size_t(s.kv_dim());
  p.token_vocab = uint32_t(vocab);
  p.token_kv.assign(size_t(vocab) * 2 * d, 0.0f);
  for (int id = 0; id < vocab; ++id) {
    KvCache kv = m.new_cache(/*pre_rope=*/true);
    const int32_t tok = id;
    m.recompute(kv, std::span(&tok, 1));
    std::copy_n(kv.k[0].data(), d, p.token_kv.begin() + (size_t(id) * 2 + 0) * d);
    std::copy_n(kv.v[0].data(), d, p.token_kv.begin() + (size_t(id) * 2 + 1) * d);
  }
}

codec::Profile build_profile(const Model& m, const Tokenizer& tok, const std::string& text,
                             const ProfileOptions& opt) {
  const KvShape s = m.kv_shape();
  const int lanes = codec::lane_count(s);
  if (!(opt.min_weight > 0.0f) || !(opt.margin_z >= 0.0) || opt.margin_eval_contexts < 1)
    throw std::invalid_argument("profile: need min_weight > 0, margin_z >= 0 and margin_eval_contexts >= 1");
  const int total = opt.calibration_contexts + opt.selection_contexts;
  auto all = cut_contexts(tok, text, kCalibrationRange, total, opt.context_tokens, opt.continuation_tokens,
                          opt.text_name);
  // Interleave: selection contexts spread evenly over the calibration range, the rest calibrate
  // (context i is a selection one when floor(i * sel / total) steps; exactly `sel` of them).
  std::vector<EvalContext> cal_ctx, sel_ctx;
  const long sel_n = std::max(0, opt.selection_contexts);
  for (int i = 0; i < total; ++i)
    (((long(i) + 1) * sel_n / total > long(i) * sel_n / total) ? sel_ctx : cal_ctx).push_back(all[i]);
  if (opt.verbose) std::cerr << "profile: " << cal_ctx.size() << " calibration + " << sel_ctx.size() << " selection contexts\n";
  auto renamed = [&](const char* stage) -> ProgressFn {
    if (!opt.progress) return {};
    return [&opt, stage](std::string_view, size_t done, size_t total) { opt.progress(stage, done, total); };
  };
  std::vector<PreparedContext> cal = prepare_contexts(m, cal_ctx, opt.threads, renamed("prefill calibration"));
  std::vector<PreparedContext> sel = prepare_contexts(m, sel_ctx, opt.threads, renamed("prefill selection"));
  std::vector<KvCache> cal_kv;
  for (auto& p : cal) cal_kv.push_back(p.kv);
  const codec::LaneStats st = codec::lane_stats(cal_kv);
  std::vector<PreparedContext> sens_set(sel.begin(), sel.begin() + std::min<size_t>(sel.size(), 6));
  std::vector<float> weight;
  if (opt.weighting == "sensitivity") {
    weight = lane_sensitivity(m, sens_set, st, opt.threads, opt.verbose, opt.min_weight, opt.progress);
  } else if (opt.weighting == "rms" || opt.weighting == "uniform") {
    weight = codec::spread_weights(st, opt.weighting);
  } else {
    throw std::invalid_argument("profile: unknown weighting '" + opt.weighting + "'");
  }

  codec::Profile p;
  p.shape = s;
  p.model_name = m.name();
  p.rope_theta = m.config().rope_theta;
  p.mean = st.mean;
  p.weight = weight;
  if (opt.token_table) add_token_table(m, p);

  // Candidate grid: base step (absolute units at weight 1) x V/K step ratio.
  std::vector<float> rms_sorted = st.rms;
  std::sort(rms_sorted.begin(), rms_sorted.end());
  const float rms_med = rms_sorted[lanes / 2];
  std::vector<Candidate> cands;
  for (int k = -24; k <= 8; ++k)  // base step = median rms * 2^(k/4)
    for (float ratio : {0.7f, 1.0f, 1.4f}) {
      Candidate c;
      c.recipe.name = "cand";
      c.recipe.k_step = rms_med * std::pow(2.0f, float(k) / 4.0f);
      c.recipe.v_step = c.recipe.k_step * ratio;
      c.recipe.scale_bits = opt.scale_bits;
      cands.push_back(std::move(c));
    }
  std::atomic<int> done{0};
  ProgressCounter measured(opt.progress, "candidates", cands.size() + 1);  // + q8
  for (auto& c : cands) {
    c.level = codec::build_level(s, cal_kv, p.mean, p.weight, c.recipe);
    codec::Profile tmp = p;
    tmp.levels = {c.level};
    c.q = measure_quality(m, sel, chunk_round_trip(&tmp, Method::Quant, 0, opt.chunk_tokens), opt.threads);
    if (opt.verbose)
      std::cerr << "profile: candidate " << ++done << "/" << cands.size() << " k_step " << c.recipe.k_step
                << " v_step " << c.recipe.v_step << ": " << c.q.bits_per_value << " bits/value, ppl "
                << c.q.ppl_delta_pct << "%, top-1 " << c.q.greedy_agreement << "\n";
    measured.step();
  }
  const QualityResult q8 = measure_quality(m, sel, chunk_round_trip(nullptr, Method::Q8, 0, opt.chunk_tokens), opt.threads);
  measured.step();
  // Ladder: for each target, the smallest candidate whose pessimistic bounds (quality_bounds)
  // meet it. The targets are the goals for near-lossless and standard.
  const Target targets[] = {{"max", 0.1, 0.997},      {"near-lossless", 0.5, 0.99},
                            {"high", 0.75, 0.97},     {"standard", 1.0, 0.95},
                            {"low", 2.5, 0.9},        {"min", 8.0, 0.8}};
  const Candidate* prev = nullptr;
  for (const Target& t : targets) {
    const Candidate* best = nullptr;
    for (const auto& c : cands) {
      const Bounds b = quality_bounds(c.q, opt.margin_z, opt.margin_eval_contexts);
      if (b.ppl_hi <= t.max_ppl_pct && b.agree_lo >= t.min_agree &&
          (!best || c.q.bits_per_value < best->q.bits_per_value))
        best = &c;
    }
    if (!best) continue;
    if (best == prev) {  // one candidate meets two targets: name it after the later (the goal it
      p.levels.back().name = t.name;  // is checked against, e.g. "standard"), keep one level
      continue;
    }
    if (prev && best->q.bits_per_value >= prev->q.bits_per_value) continue;
    prev = best;
    codec::ProfileLevel L = best->level;
    L.name = t.name;
    L.quality.bits_per_value = best->q.bits_per_value;
    L.quality.ratio_vs_q8 = double(q8.bytes) / double(best->q.bytes);
    L.quality.ppl_delta_pct = best->q.ppl_delta_pct;
    L.quality.greedy_agreement = best->q.greedy_agreement;
    L.quality.contexts = best->q.contexts;
    p.levels.push_back(std::move(L));
  }
  if (p.levels.empty()) throw std::runtime_error("profile: no candidate met any ladder target");
  nlohmann::json grid = nlohmann::json::array();
  for (const auto& c : cands)
    grid.push_back({{"k_step", c.recipe.k_step}, {"v_step", c.recipe.v_step},
                    {"bits_per_value", c.q.bits_per_value}, {"ppl_delta_pct", c.q.ppl_delta_pct},
                    {"greedy_agreement", c.q.greedy_agreement},
                    {"ppl_delta_pct_bound", quality_bounds(c.q, opt.margin_z, opt.margin_eval_contexts).ppl_hi},
                    {"greedy_agreement_bound", quality_bounds(c.q, opt.margin_z, opt.margin_eval_contexts).agree_lo}});
  p.provenance = {{"tool", "kvstream profile"},
                  {"text_range", {kCalibrationRange.begin_frac, kCalibrationRange.end_frac}},
                  {"calibration_contexts", cal.size()}, {"selection_contexts", sel.size()},
                  {"context_tokens", opt.context_tokens}, {"continuation_tokens", opt.continuation_tokens},
                  {"chunk_tokens", opt.chunk_tokens}, {"q8_bits_per_value", q8.bits_per_value},
                  {"weighting", opt.weighting}, {"margin_z", opt.margin_z}, {"min_weight", opt.min_weight},
                  {"margin_eval_contexts", opt.margin_eval_contexts},
                  {"grid", grid}};
  p.validate();
  return p;
}

EvalReport evaluate_codec(const Model& m, const Tokenizer& tok, const codec::Profile& profile,
                          const std::string& text, const EvalOptions& opt) {
  if (!(profile.shape == m.kv_shape())) throw std::invalid_argument("eval: profile is for another model");
  const int threads = opt.threads;
  const uint32_t chunk_tokens = opt.chunk_tokens;
  const auto prep = prepare_contexts(
      m, cut_contexts(tok, text, opt.range, opt.contexts, opt.context_tokens, opt.continuation_tokens, opt.text_name),
      threads, opt.progress);
  ProgressCounter measured(opt.progress, "entries", profile.levels.size() + 5);  // + 4 baselines + text
  EvalReport rep;
  rep.contexts = opt.contexts;
  auto add = [&](std::string name, const char* kind, const RoundTrip& rt) {
    rep.entries.push_back({std::move(name), kind, measure_quality(m, prep, rt, threads), 0});
    measured.step();
  };
  for (size_t l = 0; l < profile.levels.size(); ++l)
    add(profile.levels[l].name, "level", chunk_round_trip(&profile, Method::Quant, int(l), chunk_tokens));
  for (Method b : {Method::Fp16, Method::Q8, Method::Q4, Method::ZstdFp16})
    add(codec::method_name(b), "baseline", chunk_round_trip(nullptr, b, 0, chunk_tokens));
  // Text: the receiver recomputes the KV from the tokens, exactly.
  add("text", "baseline", [&](const KvCache& kv, size_t& bytes) {
    for (size_t b = 0; b < kv.num_tokens(); b += chunk_tokens)
      bytes += codec::encode_chunk(kv, b, std::min<size_t>(kv.num_tokens(), b + chunk_tokens), uint32_t(b),
                                   Method::Text, nullptr, 0).size();
    KvCache out = m.new_cache(false);
    m.recompute(out, kv.tokens);
    return out;
  });
  size_t q8 = 0;
  for (auto& e : rep.entries)
    if (e.name == "q8") q8 = e.q.bytes;
  for (auto& e : rep.entries) e.ratio_vs_q8 = double(q8) / double(e.q.bytes);
  return rep;
}

}  // namespace kvstream::model
