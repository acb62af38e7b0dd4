// The model-agnostic profiler (see kv_profile.h).
#include "codec/kv_profile.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "codec/chunk_codec.h"
#include "codec/rope.h"
#include "codec/thread_pool.h"

namespace kvstream::codec {

namespace {

struct Split {
  std::vector<KvCache> cal, held;  // held-out caches: keys pre-RoPE
};

Split split_dumps(const std::vector<KvCache>& dumps) {
  Split s;
  if (dumps.size() == 1) {
    const KvCache& kv = dumps[0];
    const size_t cut = kv.num_tokens() - kv.num_tokens() / 4;
    s.cal.push_back(kv.slice(0, cut));
    s.held.push_back(kv.slice(cut, kv.num_tokens()));
    // The held-out slice's rows sit at positions cut.. (its keys' RoPE angles).
    rope_remove_from_keys(s.held.back(), int(cut));
    return s;
  }
  for (size_t i = 0; i < dumps.size(); ++i) {
    if (i % 4 == 3 || (dumps.size() < 4 && i == dumps.size() - 1)) {
      s.held.push_back(dumps[i]);
      rope_remove_from_keys(s.held.back(), 0);
    } else {
      s.cal.push_back(dumps[i]);
    }
  }
  return s;
}

struct Measured {
  double bits_per_value = 0;
  double snr_db = 0;
  uint64_t bytes = 0;
};

// Size and reconstruction SNR of `method` (a one-level profile for Quant) on the held-out caches.
Measured measure(const std::vector<KvCache>& held, const Profile* p, Method method, const std::vector<float>& mean,
                 uint32_t chunk_tokens) {
  Measured m;
  double signal = 0, noise = 0, values = 0;
  std::unique_ptr<LevelDecodeTables> tables;
  EncodeOptions eo;
  if (method == Method::Quant) {
    tables = std::make_unique<LevelDecodeTables>(build_decode_tables(*p, 0));
    eo.profile_hash = tables->profile_hash;
  }
  for (const KvCache& kv : held) {
    KvCache out(kv.shape, kv.model_name, kv.rope_theta, /*pre_rope=*/true);
    out.resize(kv.num_tokens());
    for (size_t b = 0; b < kv.num_tokens(); b += chunk_tokens) {
      const size_t e = std::min<size_t>(kv.num_tokens(), b + chunk_tokens);
      const auto blob = encode_chunk(kv, b, e, uint32_t(b), method, p, 0, eo);
      m.bytes += blob.size();
      decode_chunk(blob, p, out, tables.get());
    }
    const int d = kv.shape.kv_dim();
    for (int l = 0; l < kv.shape.n_layers; ++l)
      for (int kind = 0; kind < 2; ++kind) {
        const auto& x = kind == 0 ? kv.k[size_t(l)] : kv.v[size_t(l)];
        const auto& y = kind == 0 ? out.k[size_t(l)] : out.v[size_t(l)];
        const float* lane_mean = mean.data() + size_t(lane_of(kv.shape, l, Kind(kind), 0));
        for (size_t i = 0; i < x.size(); ++i) {
          const double dx = double(x[i]) - lane_mean[i % size_t(d)], err = double(x[i]) - y[i];
          signal += dx * dx, noise += err * err;
        }
        values += double(x.size());
      }
  }
  m.bits_per_value = 8.0 * double(m.bytes) / values;
  m.snr_db = noise > 0 ? 10.0 * std::log10(signal / noise) : 200.0;
  return m;
}

std::string target_name(const char* prefix, double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%s%g", prefix, v);
  return b;
}

}  // namespace

std::vector<float> spread_weights(const LaneStats& st, const std::string& weighting) {
  const size_t lanes = st.rms.size();
  if (weighting == "uniform") return std::vector<float>(lanes, 1.0f);
  if (weighting != "rms") throw std::invalid_argument("unknown weighting '" + weighting + "' (rms or uniform)");
  std::vector<float> r = st.rms;
  std::nth_element(r.begin(), r.begin() + long(lanes / 2), r.end());
  std::vector<float> w(lanes);
  for (size_t k = 0; k < lanes; ++k) w[k] = r[lanes / 2] / std::max(st.rms[k], 1e-6f);
  return w;
}

Profile build_kv_profile(const std::vector<KvCache>& dumps, const KvProfileOptions& opt) {
  if (dumps.empty()) throw std::invalid_argument("KV profile: no KV dumps");
  size_t tokens = 0;
  for (const auto& kv : dumps) {
    kv.validate();
    if (!(kv.shape == dumps[0].shape) || kv.model_name != dumps[0].model_name || kv.rope_theta != dumps[0].rope_theta)
      throw std::invalid_argument("KV profile: the dumps are of different models (shape, name or rope_theta)");
    tokens += kv.num_tokens();
  }
  if (tokens < 8 || (dumps.size() == 1 && dumps[0].num_tokens() < 8))
    throw std::invalid_argument("KV profile: need at least 8 tokens of KV");
  if (opt.snr_db.empty() && opt.bits.empty()) throw std::invalid_argument("KV profile: no level targets");
  const KvShape s = dumps[0].shape;
  const int lanes = lane_count(s);
  const Split sp = split_dumps(dumps);
  const LaneStats st = lane_stats(sp.cal);

  Profile p;
  p.shape = s;
  p.model_name = dumps[0].model_name;
  p.rope_theta = dumps[0].rope_theta;
  p.mean = st.mean;
  p.weight = spread_weights(st, opt.weighting);

  // Candidates: base step = median rms x 2^(k/4), the same grid the model-based profiler searches.
  std::vector<float> rms_sorted = st.rms;
  std::sort(rms_sorted.begin(), rms_sorted.end());
  const float rms_med = std::max(rms_sorted[size_t(lanes) / 2], 1e-6f);
  struct Candidate {
    ProfileLevel level;
    Measured m;
  };
  std::vector<Candidate> cands(33);
  parallel_for(cands.size(), opt.threads, [&](size_t i) {
    LevelRecipe r;
    r.name = "cand";
    r.k_step = r.v_step = rms_med * std::pow(2.0f, (float(i) - 24.0f) / 4.0f);
    r.scale_bits = opt.scale_bits;
    Profile one = p;
    one.levels = {build_level(s, sp.cal, p.mean, p.weight, r)};
    cands[i].m = measure(sp.held, &one, Method::Quant, p.mean, opt.chunk_tokens);
    cands[i].level = std::move(one.levels[0]);
  });
  const Measured q8 = measure(sp.held, nullptr, Method::Q8, p.mean, opt.chunk_tokens);

  // One level per target, best first; a candidate chosen twice is kept once (the later name).
  const bool by_bits = !opt.bits.empty();
  std::vector<double> targets = by_bits ? opt.bits : opt.snr_db;
  std::sort(targets.begin(), targets.end(), std::greater<>());
  nlohmann::json levels_j = nlohmann::json::array();
  const Candidate* prev = nullptr;
  for (double t : targets) {
    const Candidate* best = nullptr;
    for (const auto& c : cands) {
      const bool meets = by_bits ? c.m.bits_per_value <= t : c.m.snr_db >= t;
      if (!meets) continue;
      if (!best || (by_bits ? c.m.snr_db > best->m.snr_db : c.m.bits_per_value < best->m.bits_per_value)) best = &c;
    }
    if (!best) continue;
    const std::string name = target_name(by_bits ? "bits" : "snr", t);
    if (best == prev) {
      p.levels.back().name = name;
      levels_j.back()["name"] = name;
      continue;
    }
    if (prev && best->m.bits_per_value >= prev->m.bits_per_value) continue;
    prev = best;
    ProfileLevel L = best->level;
    L.name = name;
    L.quality.bits_per_value = best->m.bits_per_value;
    L.quality.ratio_vs_q8 = double(q8.bytes) / double(best->m.bytes);
    L.quality.contexts = 0;  // model quality not measured (no model)
    p.levels.push_back(std::move(L));
    levels_j.push_back({{"name", name}, {"snr_db", best->m.snr_db}, {"bits_per_value", best->m.bits_per_value},
                        {"k_step", best->level.k_step}});
  }
  if (p.levels.empty()) throw std::runtime_error("KV profile: no candidate step meets any level target");
  nlohmann::json grid = nlohmann::json::array();
  for (const auto& c : cands)
    grid.push_back({{"k_step", c.level.k_step}, {"bits_per_value", c.m.bits_per_value}, {"snr_db", c.m.snr_db}});
  size_t cal_tokens = 0, held_tokens = 0;
  for (const auto& kv : sp.cal) cal_tokens += kv.num_tokens();
  for (const auto& kv : sp.held) held_tokens += kv.num_tokens();
  p.provenance = {{"tool", "kvstream profile --kv"},
                  {"kv_profile", {{"model_free", true}, {"weighting", opt.weighting},
                                  {"targets", by_bits ? "bits_per_value" : "snr_db"},
                                  {"dumps", dumps.size()}, {"calibration_tokens", cal_tokens},
                                  {"heldout_tokens", held_tokens}, {"chunk_tokens", opt.chunk_tokens},
                                  {"q8_bits_per_value", q8.bits_per_value}, {"q8_snr_db", q8.snr_db},
                                  {"levels", levels_j}, {"grid", grid}}}};
  p.validate();
  return p;
}

}  // namespace kvstream::codec
