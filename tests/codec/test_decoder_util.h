// Shared fixture of the decoder tests: real KV caches of stories260K (prefilled by the reference
// model on TinyStories text), a profile built from other real caches (one level with a large
// escape tail so escapes are exercised), and helpers to encode chunks and compare outputs.
#pragma once
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "codec/chunk_codec.h"
#include "codec/decoder.h"
#include "codec/profile.h"
#include "model/file_bytes.h"
#include "model/kv_quality.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "tests/test_data.h"

namespace kvstream::testing {

struct DecoderFixture {
  model::Model model;
  KvCache context;                 // post-RoPE keys, token t at position t
  std::vector<KvCache> calibration;
  codec::Profile profile;          // levels: "fine" (few escapes), "coarse", "tail" (~1% escapes)
  codec::Profile profile_tt;       // the same plus the model's layer-0 token table (profile.h)

  static const DecoderFixture& get() {
    static const DecoderFixture f;
    return f;
  }

 private:
  DecoderFixture() : model(model::Model::load(model_path())) {
    const auto tok = model::Tokenizer::load(tokenizer_path());
    const std::string text = model::read_text_file(text_path());
    auto prefill = [&](size_t from, size_t n) {
      auto ids = tok.encode(text.substr(from, 6000));
      ids.resize(std::min(ids.size(), n));
      KvCache kv = model.new_cache(false);
      model.recompute(kv, ids);
      return kv;
    };
    calibration.push_back(prefill(0, 320));
    calibration.push_back(prefill(20000, 320));
    context = prefill(60000, 300);  // 4 full 64-token chunks + one of 44
    const KvShape s = model.kv_shape();
    profile.shape = s;
    profile.model_name = "stories260K";
    profile.rope_theta = model.config().rope_theta;
    const codec::LaneStats ls = codec::lane_stats(calibration);
    profile.mean = ls.mean;
    profile.weight.assign(size_t(codec::lane_count(s)), 1.0f);
    auto level = [&](const char* name, float step, double tail) {
      codec::LevelRecipe r;
      r.name = name;
      r.k_step = r.v_step = step;
      r.scale_bits = 11;
      return codec::build_level(s, calibration, profile.mean, profile.weight, r, tail);
    };
    profile.levels.push_back(level("fine", 0.01f, 1e-5));
    profile.levels.push_back(level("coarse", 0.1f, 1e-5));
    profile.levels.push_back(level("tail", 0.02f, 0.02));
    profile.validate();
    profile_tt = profile;
    model::add_token_table(model, profile_tt);
    profile_tt.validate();
  }
};

// Chunks of `kv` (token t at position pos_offset + t) at one profile level.
inline std::vector<std::vector<uint8_t>> encode_chunks(const KvCache& kv, const codec::Profile& p, int level,
                                                       size_t chunk_tokens = 64, int symbols_per_stream = 4096,
                                                       codec::Method method = codec::Method::Quant,
                                                       uint32_t pos_offset = 0) {
  std::vector<std::vector<uint8_t>> out;
  codec::EncodeOptions opt;
  opt.symbols_per_stream = symbols_per_stream;
  for (size_t b = 0; b < kv.num_tokens(); b += chunk_tokens) {
    const size_t e = std::min(kv.num_tokens(), b + chunk_tokens);
    out.push_back(codec::encode_chunk(kv, b, e, uint32_t(b) + pos_offset, method, &p, level, opt));
  }
  return out;
}

// All bytes of a destination's tensors rows [0, rows), layer by layer, K then V.
inline std::vector<uint8_t> dest_bytes(codec::Decoder& d, const codec::KvDest& dst, uint32_t rows) {
  std::vector<uint8_t> all;
  for (int l = 0; l < dst.shape.n_layers; ++l)
    for (int kind = 0; kind < 2; ++kind) {
      const auto b = d.read_back(dst, l, kind, rows);
      all.insert(all.end(), b.begin(), b.end());
    }
  return all;
}

// Number of differing bytes (compare with 0: a failing CHECK on two big vectors would make Catch
// print every element).
inline size_t byte_diff(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  size_t n = a.size() > b.size() ? a.size() - b.size() : b.size() - a.size();
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) n += a[i] != b[i];
  return n;
}

}  // namespace kvstream::testing
