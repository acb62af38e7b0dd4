#include "model/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "model/ops.h"

namespace kvstream::model {

namespace {

// [rows][cols] -> [cols][rows]
void transpose_into(const float* src, int rows, int cols, float* dst, int dst_ld, int dst_col0) {
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) dst[size_t(c) * dst_ld + dst_col0 + r] = src[size_t(r) * cols + c];
}

// Per-thread scratch, grown on demand; never shared between threads.
struct Workspace {
  std::vector<float> x, xn, qkv, att, hb, kt, scores, logits, kscratch, vscratch, krows;
  template <class... V>
  static void need(std::vector<float>& v, size_t n) {
    if (v.size() < n) v.resize(n);
  }
};
thread_local Workspace tl_ws;

}  // namespace

void check_tokenizer(const Model& m, const Tokenizer& t) {
  if (t.vocab_size() != m.config().vocab_size)
    throw std::invalid_argument("tokenizer has " + std::to_string(t.vocab_size()) + " tokens but model " +
                                m.name() + " has a vocabulary of " + std::to_string(m.config().vocab_size));
}

double top1_agreement(const ScoreResult& a, const ScoreResult& b) {
  const size_t n = std::min(a.top1.size(), b.top1.size());
  if (n == 0) return 1.0;
  size_t same = 0;
  for (size_t i = 0; i < n; ++i) same += a.top1[i] == b.top1[i];
  return double(same) / double(n);
}

Model Model::load(const std::string& path, std::string name) {
  if (name.empty()) name = std::filesystem::path(path).stem().string();
  return from_checkpoint(load_checkpoint(path), std::move(name));
}

Model Model::from_checkpoint(const Checkpoint& ck, std::string name) {
  Model m;
  const Config& c = ck.config;
  m.config_ = c;
  m.name_ = std::move(name);
  const int d = c.dim, hd = c.hidden_dim, kvd = c.kv_dim(), L = c.n_layers;
  m.embedding_ = ck.token_embedding;
  m.rms_final_ = ck.rms_final;
  m.cls_t_.resize(size_t(c.vocab_size) * d);
  transpose_into(c.shared_classifier ? ck.token_embedding.data() : ck.wcls.data(), c.vocab_size, d,
                 m.cls_t_.data(), c.vocab_size, 0);
  m.layers_.resize(L);
  const int qkv = d + 2 * kvd;
  for (int l = 0; l < L; ++l) {
    Layer& ly = m.layers_[l];
    ly.rms_att.assign(ck.rms_att.begin() + size_t(l) * d, ck.rms_att.begin() + size_t(l + 1) * d);
    ly.rms_ffn.assign(ck.rms_ffn.begin() + size_t(l) * d, ck.rms_ffn.begin() + size_t(l + 1) * d);
    ly.wqkv_t.resize(size_t(d) * qkv);
    transpose_into(ck.wq.data() + size_t(l) * d * d, d, d, ly.wqkv_t.data(), qkv, 0);
    transpose_into(ck.wk.data() + size_t(l) * kvd * d, kvd, d, ly.wqkv_t.data(), qkv, d);
    transpose_into(ck.wv.data() + size_t(l) * kvd * d, kvd, d, ly.wqkv_t.data(), qkv, d + kvd);
    ly.wo_t.resize(size_t(d) * d);
    transpose_into(ck.wo.data() + size_t(l) * d * d, d, d, ly.wo_t.data(), d, 0);
    ly.w13_t.resize(size_t(d) * 2 * hd);
    transpose_into(ck.w1.data() + size_t(l) * hd * d, hd, d, ly.w13_t.data(), 2 * hd, 0);
    transpose_into(ck.w3.data() + size_t(l) * hd * d, hd, d, ly.w13_t.data(), 2 * hd, hd);
    ly.w2_t.resize(size_t(hd) * d);
    transpose_into(ck.w2.data() + size_t(l) * d * hd, d, hd, ly.w2_t.data(), d, 0);
  }
  // RoPE table with run.c's float values (same expressions as codec/rope.cpp).
  const int half = c.head_dim() / 2;
  m.rope_cos_.resize(size_t(c.seq_len) * half);
  m.rope_sin_.resize(size_t(c.seq_len) * half);
  for (int pos = 0; pos < c.seq_len; ++pos)
    for (int i = 0; i < c.head_dim(); i += 2) {
      const float freq = 1.0f / powf(c.rope_theta, i / static_cast<float>(c.head_dim()));
      const float val = pos * freq;
      m.rope_cos_[size_t(pos) * half + i / 2] = cosf(val);
      m.rope_sin_[size_t(pos) * half + i / 2] = sinf(val);
    }
  return m;
}

KvCache Model::new_cache(bool pre_rope) const {
  return KvCache(kv_shape(), name_, config_.rope_theta, pre_rope);
}

void Model::check_tokens(std::span<const int32_t> tokens) const {
  for (int32_t t : tokens)
    if (t < 0 || t >= config_.vocab_size)
      throw std::invalid_argument("token id " + std::to_string(t) + " outside the vocabulary of " +
                                  std::to_string(config_.vocab_size));
}

void Model::check_cache(const KvCache& kv) const {
  if (!(kv.shape == kv_shape()))
    throw std::invalid_argument(
        "KV cache shape (" + std::to_string(kv.shape.n_layers) + " layers, " +
        std::to_string(kv.shape.n_kv_heads) + " kv heads, head_dim " + std::to_string(kv.shape.head_dim) +
        ") does not match model " + name_ + " (" + std::to_string(config_.n_layers) + ", " +
        std::to_string(config_.n_kv_heads) + ", " + std::to_string(config_.head_dim()) + ")");
  if (kv.rope_theta != config_.rope_theta)
    throw std::invalid_argument("KV cache rope_theta " + std::to_string(kv.rope_theta) +
                                " does not match the model's " + std::to_string(config_.rope_theta));
  kv.validate();
}

// The forward pass over `tokens` at positions P.., attending to past's first P K/V rows.
// new_k[l]/new_v[l]: where layer l's K/V rows of the new tokens go (n * kv_dim floats each).
// Exactly one of logits (per mode) / score is used.
void Model::forward(const KvCache& past, size_t P, std::span<const int32_t> tokens, float* const* new_k,
                    float* const* new_v, bool store_pre_rope, LogitsMode mode, float* logits,
                    ScoreResult* score) const {
  const Config& c = config_;
  const int d = c.dim, hd = c.hidden_dim, kvd = c.kv_dim(), hs = c.head_dim(), nh = c.n_heads,
            nkv = c.n_kv_heads, kv_mul = nh / nkv, V = c.vocab_size, half = hs / 2;
  const int qkvw = d + 2 * kvd;
  const size_t n = tokens.size();
  const size_t T = P + n;
  const size_t T8 = (T + 7) & ~size_t(7);  // kt row stride, padded for 8-wide loads
  const bool past_pre = past.keys_pre_rope;
  const float scale = sqrtf(float(hs));

  Workspace& ws = tl_ws;
  Workspace::need(ws.x, n * d);
  Workspace::need(ws.xn, n * d);
  Workspace::need(ws.qkv, n * qkvw);
  Workspace::need(ws.att, n * d);
  Workspace::need(ws.hb, n * 2 * hd);
  Workspace::need(ws.kt, T8 * kvd);
  Workspace::need(ws.scores, size_t(kv_mul) * T8);
  float *x = ws.x.data(), *xn = ws.xn.data(), *qkv = ws.qkv.data(), *att = ws.att.data(),
        *hb = ws.hb.data(), *kt = ws.kt.data(), *sc = ws.scores.data();

  auto rope_cs = [&](size_t pos, int i, float& fcr, float& fci) {
    if (pos < size_t(c.seq_len)) {
      fcr = rope_cos_[pos * half + i];
      fci = rope_sin_[pos * half + i];
    } else {
      const float freq = 1.0f / powf(c.rope_theta, (2 * i) / static_cast<float>(hs));
      const float val = pos * freq;
      fcr = cosf(val);
      fci = sinf(val);
    }
  };
  auto rotate = [&](float* v, int heads, size_t pos) {
    for (int i = 0; i < half; ++i) {
      float fcr, fci;
      rope_cs(pos, i, fcr, fci);
      for (int h = 0; h < heads; ++h) {
        float* p = v + h * hs + 2 * i;
        const float v0 = p[0], v1 = p[1];
        p[0] = v0 * fcr - v1 * fci;
        p[1] = v0 * fci + v1 * fcr;
      }
    }
  };
  // kt layout: [kv_head][d][T8] (post-RoPE keys, transposed so scores vectorise over positions)
  auto put_key = [&](const float* k, size_t t) {
    for (int j = 0; j < kvd; ++j) kt[size_t(j) * T8 + t] = k[j];
  };

  for (size_t t = 0; t < n; ++t)
    std::memcpy(x + t * d, embedding_.data() + size_t(tokens[t]) * d, sizeof(float) * d);

  for (int l = 0; l < c.n_layers; ++l) {
    const Layer& ly = layers_[l];
    for (size_t t = 0; t < n; ++t) ops::rmsnorm(xn + t * d, x + t * d, ly.rms_att.data(), d, c.rms_eps);
    ops::matmul(xn, d, n, d, ly.wqkv_t.data(), qkvw, qkv, qkvw);

    // Past keys into kt (rotating pre-RoPE ones); new tokens: RoPE q/k, store K/V, add to kt.
    const float* pk = past.k[l].data();
    if (P && past_pre) {
      Workspace::need(ws.krows, P * kvd);
      std::memcpy(ws.krows.data(), pk, sizeof(float) * P * kvd);
      for (size_t t = 0; t < P; ++t) rotate(ws.krows.data() + t * kvd, nkv, t);
      ops::transpose_rows(ws.krows.data(), P, kvd, kt, T8, 0);
    } else if (P) {
      ops::transpose_rows(pk, P, kvd, kt, T8, 0);
    }
    for (size_t t = 0; t < n; ++t) {
      float* q = qkv + t * qkvw;
      float* k = q + d;
      const float* v = k + kvd;
      if (store_pre_rope) std::memcpy(new_k[l] + t * kvd, k, sizeof(float) * kvd);
      rotate(q, nh, P + t);
      rotate(k, nkv, P + t);
      if (!store_pre_rope) std::memcpy(new_k[l] + t * kvd, k, sizeof(float) * kvd);
      std::memcpy(new_v[l] + t * kvd, v, sizeof(float) * kvd);
      put_key(k, P + t);
    }

    // Causal grouped-query attention as run.c: score = q.k / sqrt(hs); softmax; sum a*v.
    const float* pv = past.v[l].data();
    const float* nv = new_v[l];
    for (size_t t = 0; t < n; ++t) {
      const size_t len = P + t + 1;
      const float* q = qkv + t * qkvw;
      float* out = att + t * d;
      for (int g = 0; g < nkv; ++g)
        ops::attend(q + g * kv_mul * hs, kv_mul, hs, kt + size_t(g) * hs * T8, T8, len, scale,
                    P ? pv + g * hs : nullptr, P, nv + g * hs, kvd, sc, T8, out + g * kv_mul * hs);
    }
    ops::matmul(att, d, n, d, ly.wo_t.data(), d, xn, d);
    for (size_t i = 0; i < n * d; ++i) x[i] += xn[i];

    // SwiGLU FFN: w2(silu(w1 x) * w3 x)
    for (size_t t = 0; t < n; ++t) ops::rmsnorm(xn + t * d, x + t * d, ly.rms_ffn.data(), d, c.rms_eps);
    ops::matmul(xn, d, n, d, ly.w13_t.data(), 2 * hd, hb, 2 * hd);
    for (size_t t = 0; t < n; ++t) ops::swiglu(hb + t * 2 * hd, hb + t * 2 * hd + hd, hd);
    ops::matmul(hb, 2 * hd, n, hd, ly.w2_t.data(), d, xn, d);
    for (size_t i = 0; i < n * d; ++i) x[i] += xn[i];
  }

  // Final norm and classifier, only for the positions whose logits are wanted.
  if (mode == LogitsMode::None && !score) return;
  size_t first = 0, count = n;
  if (score) count = n > 0 ? n - 1 : 0;
  else if (mode == LogitsMode::Last) first = n - 1, count = 1;
  constexpr size_t kBlock = 16;
  if (score) Workspace::need(ws.logits, kBlock * V);
  for (size_t b = first; b < first + count; b += kBlock) {
    const size_t m = std::min(kBlock, first + count - b);
    for (size_t t = b; t < b + m; ++t) ops::rmsnorm(xn + t * d, x + t * d, rms_final_.data(), d, c.rms_eps);
    float* dst = score ? ws.logits.data() : logits + (b - first) * V;
    ops::matmul(xn + b * d, d, m, d, cls_t_.data(), V, dst, V);
    if (!score) continue;
    for (size_t t = 0; t < m; ++t) {
      const float* lg = dst + t * V;
      int best = 0;
      for (int i = 1; i < V; ++i)
        if (lg[i] > lg[best]) best = i;
      const double mx = lg[best];
      double sum = 0.0;
      for (int i = 0; i < V; ++i) sum += std::exp(double(lg[i]) - mx);
      const int32_t target = tokens[b + t + 1];
      const double lp = (double(lg[target]) - mx) - std::log(sum);
      score->logprob.push_back(lp);
      score->top1.push_back(best);
      score->sum_logprob += lp;
    }
  }
}

std::vector<float> Model::prefill(KvCache& kv, std::span<const int32_t> tokens, LogitsMode mode) const {
  check_cache(kv);
  check_tokens(tokens);
  std::vector<float> logits;
  if (tokens.empty()) return logits;
  const size_t P = kv.num_tokens(), n = tokens.size(), kvd = config_.kv_dim();
  if (mode == LogitsMode::Last) logits.resize(config_.vocab_size);
  if (mode == LogitsMode::All) logits.resize(n * config_.vocab_size);
  kv.resize(P + n);
  std::copy(tokens.begin(), tokens.end(), kv.tokens.begin() + P);
  std::vector<float*> nk(config_.n_layers), nv(config_.n_layers);
  for (int l = 0; l < config_.n_layers; ++l) {
    nk[l] = kv.k[l].data() + P * kvd;
    nv[l] = kv.v[l].data() + P * kvd;
  }
  forward(kv, P, tokens, nk.data(), nv.data(), kv.keys_pre_rope, mode, logits.data(), nullptr);
  return logits;
}

std::vector<float> Model::step(KvCache& kv, int32_t token) const {
  return prefill(kv, std::span<const int32_t>(&token, 1), LogitsMode::Last);
}

Model::ScratchRows Model::scratch_rows(size_t n) const {
  const size_t kvd = config_.kv_dim();
  Workspace& ws = tl_ws;
  Workspace::need(ws.kscratch, n * kvd);
  Workspace::need(ws.vscratch, n * kvd);
  return {std::vector<float*>(config_.n_layers, ws.kscratch.data()), std::vector<float*>(config_.n_layers, ws.vscratch.data())};
}

std::vector<float> Model::next_logits(const KvCache& kv, int32_t token) const {
  check_cache(kv);
  check_tokens(std::span<const int32_t>(&token, 1));
  const ScratchRows rows = scratch_rows(1);
  std::vector<float> logits(config_.vocab_size);
  forward(kv, kv.num_tokens(), std::span<const int32_t>(&token, 1), rows.k.data(), rows.v.data(), kv.keys_pre_rope,
          LogitsMode::Last, logits.data(), nullptr);
  return logits;
}

void Model::recompute(KvCache& kv, std::span<const int32_t> tokens) const {
  prefill(kv, tokens, LogitsMode::None);
}

ScoreResult Model::score(const KvCache& kv, std::span<const int32_t> tokens) const {
  return score_impl(kv, kv.num_tokens(), tokens);
}

ScoreResult Model::score_continuation(const KvCache& kv, std::span<const int32_t> continuation) const {
  if (kv.num_tokens() == 0)
    throw std::invalid_argument("score_continuation: the KV cache holds no tokens to continue");
  std::vector<int32_t> tokens;
  tokens.reserve(continuation.size() + 1);
  tokens.push_back(kv.tokens.back());
  tokens.insert(tokens.end(), continuation.begin(), continuation.end());
  return score_impl(kv, kv.num_tokens() - 1, tokens);
}

ScoreResult Model::score_impl(const KvCache& kv, size_t past, std::span<const int32_t> tokens) const {
  check_cache(kv);
  check_tokens(tokens);
  ScoreResult r;
  if (tokens.size() >= 2) {
    const size_t n = tokens.size();
    const ScratchRows rows = scratch_rows(n);
    r.logprob.reserve(n - 1);
    r.top1.reserve(n - 1);
    forward(kv, past, tokens, rows.k.data(), rows.v.data(), false, LogitsMode::None, nullptr, &r);
  }
  r.perplexity = r.count() ? std::exp(-r.sum_logprob / double(r.count())) : 1.0;
  return r;
}

namespace {
struct Rng {  // llama2.c run.c xorshift
  uint64_t state;
  uint32_t u32() {
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return uint32_t((state * 0x2545F4914F6CDD1Dull) >> 32);
  }
  float f32() { return (u32() >> 8) / 16777216.0f; }
};

int argmax(const float* p, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (p[i] > p[best]) best = i;
  return best;
}

int sample_mult(const float* p, int n, float coin) {
  float cdf = 0.0f;
  for (int i = 0; i < n; ++i) {
    cdf += p[i];
    if (coin < cdf) return i;
  }
  return n - 1;
}

int sample_topp(const float* p, int n, float topp, float coin) {
  struct PI {
    float prob;
    int index;
  };
  std::vector<PI> cand;
  const float cutoff = (1.0f - topp) / (n - 1);
  for (int i = 0; i < n; ++i)
    if (p[i] >= cutoff) cand.push_back({p[i], i});
  if (cand.empty()) return argmax(p, n);
  std::stable_sort(cand.begin(), cand.end(), [](const PI& a, const PI& b) { return a.prob > b.prob; });
  float cumulative = 0.0f;
  size_t last = cand.size() - 1;
  for (size_t i = 0; i < cand.size(); ++i) {
    cumulative += cand[i].prob;
    if (cumulative > topp) {
      last = i;
      break;
    }
  }
  const float r = coin * cumulative;
  float cdf = 0.0f;
  for (size_t i = 0; i <= last; ++i) {
    cdf += cand[i].prob;
    if (r < cdf) return cand[i].index;
  }
  return cand[last].index;
}
// run.c sample(): argmax at temperature 0, else softmax(logits / T) with top-p or multinomial.
struct Sampler {
  float temperature, topp;
  Rng rng;
  int operator()(std::vector<float>& lg) {
    const int V = static_cast<int>(lg.size());
    if (temperature == 0.0f) return argmax(lg.data(), V);
    for (float& v : lg) v /= temperature;
    ops::softmax(lg.data(), lg.size());
    const float coin = rng.f32();
    if (topp <= 0 || topp >= 1) return sample_mult(lg.data(), V, coin);
    return sample_topp(lg.data(), V, topp, coin);
  }
};
}  // namespace

GenerateResult Model::generate_from(const KvCache& context, int new_tokens, float temperature,
                                    uint64_t seed, float topp) const {
  check_cache(context);
  if (context.num_tokens() == 0) throw std::invalid_argument("generate_from: the KV cache holds no tokens");
  if (!(temperature >= 0.0f)) throw std::invalid_argument("generate: temperature must be >= 0");
  GenerateResult res;
  res.tokens = context.tokens;
  res.num_prompt = context.num_tokens();
  Sampler sample{temperature, topp, Rng{seed ? seed : 0x9E3779B97F4A7C15ull}};
  KvCache kv = context.slice(0, context.num_tokens() - 1);
  std::vector<float> lg = step(kv, context.tokens.back());
  for (int i = 0; i < new_tokens && kv.num_tokens() < size_t(config_.seq_len); ++i) {
    const int next = sample(lg);
    if (next == 1) {  // BOS
      res.stopped_on_bos = true;
      break;
    }
    res.tokens.push_back(next);
    if (i + 1 < new_tokens && kv.num_tokens() < size_t(config_.seq_len)) lg = step(kv, next);
  }
  return res;
}

GenerateResult Model::generate(std::span<const int32_t> prompt, int steps, float temperature,
                               uint64_t seed, float topp) const {
  if (prompt.empty()) throw std::invalid_argument("generate: the prompt needs at least one token (BOS)");
  if (!(temperature >= 0.0f)) throw std::invalid_argument("generate: temperature must be >= 0");
  if (steps <= 0 || steps > config_.seq_len) steps = config_.seq_len;
  GenerateResult res;
  res.num_prompt = prompt.size();
  res.tokens.assign(prompt.begin(), prompt.end());
  Sampler sample{temperature, topp, Rng{seed ? seed : 0x9E3779B97F4A7C15ull}};
  // Positions 0..np-1 hold the prompt; run.c forwards positions 0..steps-1 in total.
  const size_t np = prompt.size();
  if (np > size_t(steps)) {  // run.c forces prompt tokens only while pos < steps
    res.tokens.resize(size_t(steps) + 1 > np ? np : size_t(steps) + 1);
    res.num_prompt = res.tokens.size();
    return res;
  }
  KvCache kv = new_cache(false);
  std::vector<float> lg = prefill(kv, prompt, LogitsMode::Last);
  for (int pos = int(np) - 1; pos < steps; ++pos) {
    const int next = sample(lg);
    if (next == 1) {  // BOS
      res.stopped_on_bos = true;
      break;
    }
    res.tokens.push_back(next);
    if (pos + 1 >= steps) break;
    lg = step(kv, next);
  }
  return res;
}

}  // namespace kvstream::model
