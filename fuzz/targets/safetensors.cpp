// Fuzz target safetensors: a KV file in the safetensors format (codec/safetensors.h), as
// `kvstream encode` and the store read it: kv_from_safetensors(), then the cache written back as
// F32 must read back bit-identical.
// Input: the file.
#include <cstring>

#include "codec/safetensors.h"
#include "fuzz/target.h"

using namespace kvstream;

namespace {
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * 4) == 0);
}
}  // namespace

KVSTREAM_FUZZ_TARGET(safetensors) {
  return fuzz::guard([&] {
    const KvCache kv = kv_from_safetensors(input.data(), input.size(), "fuzz");
    const std::vector<uint8_t> f32 = kv_to_safetensors(kv, Dtype::F32);
    const KvCache back = kv_from_safetensors(f32.data(), f32.size(), "fuzz");
    KVSTREAM_FUZZ_CHECK(back.shape == kv.shape && back.tokens == kv.tokens);
    for (int l = 0; l < kv.shape.n_layers; ++l)
      KVSTREAM_FUZZ_CHECK(same_bits(back.k[l], kv.k[l]) && same_bits(back.v[l], kv.v[l]));
  });
}
