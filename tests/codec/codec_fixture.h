// Shared fixtures of the codec tests: a real stories260K KV cache (128 tokens of held-out
// TinyStories text, written by `kvstream prefill --dtype f16`) and a profile calibrated on it.
#pragma once
#include <string>

#include "codec/profile.h"
#include "codec/safetensors.h"

namespace kvstream::testing {

// tests/codec/data/<name>, found beside this header (CMake compiles with absolute paths), or in
// KVSTREAM_CODEC_TEST_DATA where a build defines it (fuzz/: its binaries run from anywhere).
inline std::string codec_data(const std::string& name) {
#ifdef KVSTREAM_CODEC_TEST_DATA
  return std::string(KVSTREAM_CODEC_TEST_DATA) + "/" + name;
#endif
  std::string here = __FILE__;
  return here.substr(0, here.find_last_of('/') + 1) + "data/" + name;
}

inline const KvCache& real_kv() {
  static const KvCache kv = read_safetensors(codec_data("kv_128.safetensors"));
  return kv;
}

// Three levels (fine, medium, coarse) with uniform weights, tables calibrated on `kv` itself.
inline codec::Profile profile_for(const KvCache& kv) {
  codec::Profile p;
  p.shape = kv.shape;
  p.model_name = kv.model_name;
  p.rope_theta = kv.rope_theta;
  const auto st = codec::lane_stats({kv});
  p.mean = st.mean;
  p.weight.assign(st.mean.size(), 1.0f);
  for (auto [name, step] : {std::pair{"fine", 0.02f}, {"medium", 0.2f}, {"coarse", 1.0f}}) {
    codec::LevelRecipe r;
    r.name = name;
    r.k_step = r.v_step = step;
    r.scale_bits = 11;
    p.levels.push_back(codec::build_level(p.shape, {kv}, p.mean, p.weight, r, 1e-3));
  }
  return p;
}

// profile_for(real_kv()), built once.
inline const codec::Profile& test_profile() {
  static const codec::Profile p = profile_for(real_kv());
  return p;
}

// Decode tables of test_profile()'s levels, built once.
inline const codec::LevelDecodeTables& test_tables(int level) {
  static const std::vector<codec::LevelDecodeTables> t = [] {
    std::vector<codec::LevelDecodeTables> v;
    for (int l = 0; l < 3; ++l) v.push_back(codec::build_decode_tables(test_profile(), l));
    return v;
  }();
  return t.at(level);
}

}  // namespace kvstream::testing
