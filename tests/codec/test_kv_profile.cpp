// The model-free profile (codec/kv_profile.h) on a real stories260K KV dump: levels best first,
// each meeting its SNR target on held-out KV (re-measured here), sizes shrinking down the ladder,
// bits-per-value targets, the two weightings, and bad input.
#include <catch2/catch.hpp>

#include <cmath>

#include "codec/chunk_codec.h"
#include "codec/kv_profile.h"
#include "codec/rope.h"
#include "tests/codec/codec_fixture.h"

using namespace kvstream;
using kvstream::testing::real_kv;

namespace {

// Reconstruction SNR (dB) of level `level` on kv (keys before RoPE).
double snr_of(const codec::Profile& p, int level, const KvCache& kv) {
  KvCache out(kv.shape, kv.model_name, kv.rope_theta, true);
  out.resize(kv.num_tokens());
  for (size_t b = 0; b < kv.num_tokens(); b += 64) {
    const size_t e = std::min<size_t>(kv.num_tokens(), b + 64);
    codec::decode_chunk(codec::encode_chunk(kv, b, e, uint32_t(b), codec::Method::Quant, &p, level), &p, out);
  }
  double sig = 0, err = 0;
  const int d = kv.shape.kv_dim();
  for (int l = 0; l < kv.shape.n_layers; ++l)
    for (int kind = 0; kind < 2; ++kind) {
      const auto& x = kind ? kv.v[l] : kv.k[l];
      const auto& y = kind ? out.v[l] : out.k[l];
      for (size_t i = 0; i < x.size(); ++i) {
        const double m = p.mean[size_t(codec::lane_of(kv.shape, l, codec::Kind(kind), int(i % size_t(d))))];
        sig += (x[i] - m) * (x[i] - m), err += double(x[i] - y[i]) * (x[i] - y[i]);
      }
    }
  return 10 * std::log10(sig / err);
}

}  // namespace

TEST_CASE("a KV-only profile's levels meet their SNR targets, best first", "[codec][kv_profile]") {
  codec::KvProfileOptions o;
  o.threads = 2;
  const auto p = codec::build_kv_profile({real_kv()}, o);
  REQUIRE(p.shape == real_kv().shape);
  REQUIRE(p.model_name == real_kv().model_name);
  REQUIRE_FALSE(p.has_token_table());
  REQUIRE(p.provenance["kv_profile"]["model_free"] == true);
  const auto& lv = p.provenance["kv_profile"]["levels"];
  REQUIRE(lv.size() == p.levels.size());
  REQUIRE(p.levels.size() >= 4);
  for (size_t i = 0; i < p.levels.size(); ++i) {
    const auto& L = p.levels[i];
    REQUIRE(L.quality.contexts == 0);  // no model quality measured
    const double target = std::stod(L.name.substr(3));  // "snr<dB>"
    REQUIRE(lv[i]["snr_db"].get<double>() >= target);
    if (i > 0) REQUIRE(L.quality.bits_per_value < p.levels[i - 1].quality.bits_per_value);
    REQUIRE(L.quality.ratio_vs_q8 > 0);
  }
  // The held-out measure agrees with a fresh one on the last quarter (what it was measured on).
  const KvCache& kv = real_kv();
  const KvCache tail = kv.slice(kv.num_tokens() - kv.num_tokens() / 4, kv.num_tokens());
  KvCache tail_pre = tail;
  kvstream::rope_remove_from_keys(tail_pre, int(kv.num_tokens() - kv.num_tokens() / 4));
  REQUIRE(tail_pre.keys_pre_rope);
  REQUIRE(snr_of(p, 0, tail_pre) == Approx(lv[0]["snr_db"].get<double>()).epsilon(1e-9));
  // The profile round-trips through its file format.
  const auto back = codec::parse_profile(codec::serialize_profile(p));
  REQUIRE(back.hash() == p.hash());
}

TEST_CASE("a KV-only profile by bit targets, and uniform weighting", "[codec][kv_profile]") {
  codec::KvProfileOptions o;
  o.threads = 2;
  o.bits = {4, 2.5, 1.5};
  const auto p = codec::build_kv_profile({real_kv()}, o);
  REQUIRE(p.levels.size() == 3);
  REQUIRE(p.levels[0].name == "bits4");
  REQUIRE(p.levels[2].name == "bits1.5");
  for (const auto& L : p.levels) REQUIRE(L.quality.bits_per_value <= std::stod(L.name.substr(4)));
  o.weighting = "uniform";
  const auto u = codec::build_kv_profile({real_kv()}, o);
  for (float w : u.weight) REQUIRE(w == 1.0f);
  o.weighting = "sensitivity";  // needs the model
  REQUIRE_THROWS_WITH(codec::build_kv_profile({real_kv()}, o), Catch::Contains("unknown weighting"));
}

TEST_CASE("a KV-only profile refuses unusable dumps", "[codec][kv_profile]") {
  codec::KvProfileOptions o;
  REQUIRE_THROWS_AS(codec::build_kv_profile({}, o), std::invalid_argument);
  KvCache other = real_kv();
  other.model_name = "another";
  REQUIRE_THROWS_WITH(codec::build_kv_profile({real_kv(), other}, o), Catch::Contains("different models"));
  REQUIRE_THROWS_WITH(codec::build_kv_profile({real_kv().slice(0, 5)}, o), Catch::Contains("at least 8 tokens"));
  o.snr_db = {200};  // unreachable
  REQUIRE_THROWS_WITH(codec::build_kv_profile({real_kv()}, o), Catch::Contains("no candidate"));
}
