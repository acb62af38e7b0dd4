// kv_profile.h: a model-agnostic codec profile, built from KV dumps alone (no reference model):
// `kvstream profile --kv FILE...`. For engines whose models kvstream cannot run: all it needs is
// KV caches of the model (safetensors, any dtype, keys before or after RoPE).
//
// What it does (and, unlike model/kv_quality's profiler, cannot do): per-lane means and spreads
// from the dumps; per-lane steps from one base step and a weighting that sees only the values —
// "rms" (step proportional to the lane's spread: every lane keeps the same relative error) or
// "uniform" (one absolute step for every lane) — never the model's sensitivity to each lane; then
// a grid of base steps (median rms x 2^(k/4), k = -24..8), each candidate's tables from the
// calibration dumps and its size and reconstruction error measured on held-out KV, and one level
// per target: a reconstruction SNR in dB (the smallest candidate whose SNR >= target) or a size in
// bits per value (the best candidate whose bits <= target). No token table (that needs the model).
//
// Reconstruction SNR of a level = 10 log10( sum (x - mean)^2 / sum (x - x')^2 ) over every K and V
// value of the held-out KV, x' the decoded value (keys compared before RoPE; RoPE preserves
// distances), mean the lane mean. It is not model quality: the levels' measured model quality is
// left unset (LevelQuality::contexts = 0, "not measured"); `kvstream eval` measures it where the
// model runs. The measured SNR and bits of every candidate and level are in the profile's
// provenance ("kv_profile").
//
// Held-out KV: with several dumps every 4th one (at least one) is held out, with one dump its last
// quarter of tokens. Contract: throws std::invalid_argument for no dumps, dumps of different
// shapes or models, fewer than 8 tokens, unknown weighting, or no target; std::runtime_error when no
// candidate meets any target.
#pragma once
#include <string>
#include <vector>

#include "codec/kv_cache.h"
#include "codec/profile.h"

namespace kvstream::codec {

struct KvProfileOptions {
  std::string weighting = "rms";          // "rms" | "uniform"
  // Level targets, best first: reconstruction SNR in dB (levels "snr<dB>") or, when bits is
  // non-empty, sizes in bits per value (levels "bits<b>"; snr_db is then ignored).
  std::vector<double> snr_db = {40, 34, 28, 22, 16, 10};
  std::vector<double> bits;
  int scale_bits = 9;                     // rANS table precision (as the model-based profiler)
  uint32_t chunk_tokens = 64;             // chunk size the sizes are measured with
  int threads = 0;                        // 0 = all cores
};

Profile build_kv_profile(const std::vector<KvCache>& dumps, const KvProfileOptions& opt);

// Per-lane weights from the values alone: "rms" = median(rms) / rms[lane] (floored at 1e-6 rms),
// "uniform" = 1. Throws std::invalid_argument for another name. (The model-based profiler's
// rms and uniform weightings are these.)
std::vector<float> spread_weights(const LaneStats& st, const std::string& weighting);

}  // namespace kvstream::codec
