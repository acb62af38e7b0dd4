// profile.h: a model profile — everything the quantizing codec needs that is learned offline on
// calibration text instead of being sent with every chunk: per-channel means, quantization steps
// and rANS frequency tables for each level of the ladder, plus each level's measured quality.
//
// Lanes: the codec treats each (layer, kind, channel) as one "lane", numbered
//   lane = (layer * 2 + kind) * kv_dim + channel      (kind 0 = K, 1 = V; channel = head*head_dim+d)
// K lanes describe PRE-RoPE keys (RoPE is re-applied after decoding).
//
// Quantization at a level: q = round((x - mean[lane]) / step[lane]); q in [q_min, q_min + n - 2]
// is table symbol q - q_min, anything else is the escape symbol n - 1 (value sent separately).
// Decoding: x' = mean[lane] + step[lane] * q.
//
// Token table (format version 2, optional): layer 0's K and V depend only on the token id
// (embedding -> rmsnorm -> projection; no position enters before RoPE), so a profile may carry
// them for every id of the vocabulary: token_kv[(id * 2 + kind) * kv_dim + channel], K pre-RoPE.
// Quant blobs then send the chunk's token ids instead of coding layer 0 (chunk_codec.h). For a
// 7B-class model the table would be vocab x 2 x kv_dim values (e.g. 32000 x 8192 x 2 B = 0.5 GB);
// a receiver holding the weights could compute it instead — here it is simply a profile section.
//
// Contract: parse_profile() validates everything (magic, version, sizes, CRC32C, every table via
// rans_finish_table, finite positive steps, every JSON number's type and range before it is
// converted) and throws CorruptBlob (chunk_codec.h; a kvstream::Error, code kCorrupt) with a clear
// message; it never allocates from an unchecked length or product (lanes are counted in 64 bits
// and bounded by the file size). The profile hash (FNV-1a 64 of the serialised
// bytes) is what containers and blobs name it by. File layout: docs/FORMAT.md.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "codec/kv_cache.h"
#include "codec/rans.h"

namespace kvstream::codec {

inline constexpr uint32_t kProfileVersion = 2;        // written when the profile has a token table
inline constexpr uint32_t kProfileVersionNoTable = 1;  // written (and hashed) when it has none
inline constexpr uint32_t kMaxTokenVocab = 1u << 20;

enum class Kind : uint8_t { K = 0, V = 1 };

inline int lane_count(const KvShape& s) { return 2 * s.n_layers * s.kv_dim(); }
inline int lane_of(const KvShape& s, int layer, Kind kind, int channel) {
  return (layer * 2 + static_cast<int>(kind)) * s.kv_dim() + channel;
}

// Measured quality of a level (or baseline), as the streamer's controller reads it.
struct LevelQuality {
  double bits_per_value = 0;    // mean coded bits per K/V value, side info included
  double ratio_vs_q8 = 0;       // q8 bytes / this level's bytes
  double ppl_delta_pct = 0;     // mean perplexity change of a continuation, % (decoded vs original KV)
  double greedy_agreement = 0;  // fraction of continuation positions with unchanged top-1
  int contexts = 0;             // how many contexts these were measured on (0 = not measured)
};

// One level of the ladder: per-lane steps and tables.
struct ProfileLevel {
  std::string name;                 // e.g. "lossless-ish", "standard"; unique within a profile
  int scale_bits = 12;              // rANS table precision, <= kRansMaxScaleBits
  float k_step = 0, v_step = 0;     // base steps the per-lane steps were derived from (provenance)
  std::vector<float> step;          // [lane], finite, > 0
  std::vector<int32_t> q_min;       // [lane], first quantized value covered by the lane's table
  std::vector<RansTable> tables;    // [lane]; last symbol of each table is the escape
  LevelQuality quality;
};

struct Profile {
  KvShape shape;
  std::string model_name;
  float rope_theta = 10000.0f;
  std::vector<float> mean;          // [lane] (K lanes: pre-RoPE key means)
  std::vector<float> weight;        // [lane] sensitivity weight used to derive steps (provenance)
  std::vector<ProfileLevel> levels; // best quality first
  uint32_t token_vocab = 0;         // ids covered by token_kv (0 = no token table)
  std::vector<float> token_kv;      // [(id * 2 + kind) * kv_dim + channel]: layer 0 K (pre-RoPE) / V
  nlohmann::json provenance;        // how it was made (calibration text, contexts, ...)

  // Index of the level named `name`; throws std::invalid_argument listing the names if absent.
  int level_index(const std::string& name) const;
  // Throws std::runtime_error if any size or value is inconsistent.
  void validate() const;
  // FNV-1a 64 over serialize_profile(*this).
  uint64_t hash() const;
  bool has_token_table() const { return token_vocab > 0; }
  // Layer 0's K (kind 0, pre-RoPE) or V (kind 1) row of token `id` (kv_dim floats); id < token_vocab.
  const float* token_row(uint32_t id, int kind) const {
    return token_kv.data() + (size_t(id) * 2 + size_t(kind)) * size_t(shape.kv_dim());
  }
};

std::vector<uint8_t> serialize_profile(const Profile& p);
Profile parse_profile(std::span<const uint8_t> bytes, const std::string& what = "profile");
void save_profile(const Profile& p, const std::string& path);
Profile load_profile(const std::string& path);
uint64_t fnv1a64(std::span<const uint8_t> bytes);

// ---- building a profile from calibration KV (no model needed here) ----

// How to derive one level: step[lane] = (K ? k_step : v_step) * layer_mult / weight[lane].
struct LevelRecipe {
  std::string name;
  float k_step = 0.05f;
  float v_step = 0.05f;
  std::vector<float> k_layer_mult;  // optional, per layer (empty = all 1)
  std::vector<float> v_layer_mult;
  int scale_bits = 12;
};

// Per-lane means and value spread of calibration caches (keys converted to pre-RoPE as needed).
struct LaneStats {
  std::vector<float> mean, rms;  // rms of (x - mean)
};
LaneStats lane_stats(const std::vector<KvCache>& calibration);

// Builds a level: steps from the recipe and weights, tables from the calibration values'
// quantized histogram. Table range covers the central values holding all but `tail_mass` of the
// calibration probability (the rest escapes), capped at kRansMaxSymbols - 1 values.
ProfileLevel build_level(const KvShape& shape, const std::vector<KvCache>& calibration,
                         const std::vector<float>& mean, const std::vector<float>& weight,
                         const LevelRecipe& recipe, double tail_mass = 1e-5);

// Flat decode tables of one level, in the layout CPU and CUDA decoders index directly (per-lane
// parameters as separate arrays, so that 16 consecutive lanes are one SIMD load).
struct LevelDecodeTables {
  int scale_bits = 12;
  int lanes = 0;
  std::vector<uint32_t> slots;  // [lane << scale_bits | slot], see rans.h
  std::vector<float> value;     // [lane * 256 + symbol] dequantized value; escape symbol -> NaN (format 2)
  std::vector<uint16_t> escape; // [lane] escape symbol index
  std::vector<float> mean, step;  // [lane]: value = mean + step * q
  std::vector<int32_t> q_min;     // [lane]: q of symbol 0 (|q_min| <= 2^30, so q_min + symbol fits)
  uint64_t profile_hash = 0;      // hash of the profile they were built from
  int level = -1;                 // which level of it
};
LevelDecodeTables build_decode_tables(const Profile& p, int level);

}  // namespace kvstream::codec
