// fuzz/fixture.h: the real data the harnesses decode against, built once per process: the
// stories260K KV fixture and the 3-level profile calibrated on it (tests/codec/codec_fixture.h,
// shared with the codec tests), an output cache of its shape, a narrow cut of the same KV (2
// layers, 1 head: fast enough to decode whole containers at fuzzing speed) with its own profile,
// and the bundled tokenizer.
#pragma once
#include <algorithm>

#include "codec/kv_cache.h"
#include "model/tokenizer.h"
#include "tests/codec/codec_fixture.h"
#include "tests/test_data.h"

namespace kvstream::fuzz {

// Rows of the output cache chunk blobs decode into (positions 0..kOutRows-1).
inline constexpr size_t kOutRows = 128;

inline KvCache& output_cache() {
  static KvCache out = [] {
    const KvCache& kv = testing::real_kv();
    KvCache o(kv.shape, kv.model_name, kv.rope_theta, false);
    o.resize(kOutRows);
    return o;
  }();
  return out;
}

// The real KV restricted to its first `layers` layers and `heads` KV heads (values unchanged).
inline KvCache narrow(const KvCache& kv, int layers, int heads) {
  KvCache o({layers, heads, kv.shape.head_dim}, kv.model_name, kv.rope_theta, kv.keys_pre_rope);
  o.resize(kv.num_tokens());
  o.tokens = kv.tokens;
  const size_t row = size_t(heads) * kv.shape.head_dim;
  for (int l = 0; l < layers; ++l)
    for (size_t t = 0; t < kv.num_tokens(); ++t) {
      std::copy_n(kv.k_row(l, t), row, o.k_row(l, t));
      std::copy_n(kv.v_row(l, t), row, o.v_row(l, t));
    }
  return o;
}

inline const KvCache& small_kv() {
  static const KvCache kv = narrow(testing::real_kv(), 2, 1);
  return kv;
}
inline const codec::Profile& small_profile() {
  static const codec::Profile p = testing::profile_for(small_kv());
  return p;
}
inline uint64_t small_profile_hash() {
  static const uint64_t h = small_profile().hash();
  return h;
}

inline const model::Tokenizer& real_tokenizer() {
  static const model::Tokenizer t = model::Tokenizer::load(testing::tokenizer_path());
  return t;
}

}  // namespace kvstream::fuzz
