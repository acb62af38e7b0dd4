// The layer-0 token table (profile format 2, blob flag kBlobFlagTokenLayer) on real stories260K
// KV: layer 0 is rebuilt from token ids exactly, layers 1.. decode bit-identically to the plain
// profile, blobs shrink, a cache that does not match the table falls back to coding layer 0, and
// corrupt token ids are rejected (the device path's host emulation: test_decoder.cpp).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>

#include "codec/decode_prep.h"
#include "codec/rope.h"
#include "tests/codec/blob_crc.h"
#include "tests/codec/test_decoder_util.h"

using namespace kvstream;
using namespace kvstream::codec;
using kvstream::testing::DecoderFixture;
using kvstream::testing::byte_diff;
using kvstream::testing::dest_bytes;
using kvstream::testing::encode_chunks;
using kvstream::testing::reseal;

namespace {

KvCache decode_all(const std::vector<std::vector<uint8_t>>& blobs, const Profile& p, const KvCache& like, bool pre) {
  KvCache out(like.shape, like.model_name, like.rope_theta, pre);
  out.resize(like.num_tokens());
  for (const auto& b : blobs) decode_chunk(b, &p, out);
  return out;
}

}  // namespace

TEST_CASE("profile token table: v2 round trip, v1 bytes kept without it, corruption rejected", "[codec][profile][token]") {
  const auto& fx = DecoderFixture::get();
  const Profile& p = fx.profile_tt;
  REQUIRE(p.token_vocab == uint32_t(fx.model.config().vocab_size));
  const auto bytes = serialize_profile(p);
  CHECK(bytes[8] == 2);                                  // version 2 with a table
  CHECK(serialize_profile(fx.profile)[8] == 1);          // unchanged version-1 bytes without one
  const Profile q = parse_profile(bytes);
  CHECK(q.token_vocab == p.token_vocab);
  CHECK(q.token_kv == p.token_kv);
  CHECK(q.hash() == p.hash());
  CHECK(p.hash() != fx.profile.hash());
  // Every truncation inside the table, and a flipped table byte, are rejected.
  for (size_t cut : {size_t(100), bytes.size() / 2, bytes.size() - 5}) {
    std::vector<uint8_t> t(bytes.begin(), bytes.begin() + long(cut));
    CHECK_THROWS_AS(parse_profile(t), std::runtime_error);
  }
  std::vector<uint8_t> flip = bytes;
  flip[bytes.size() / 3] ^= 0x10;
  CHECK_THROWS_AS(parse_profile(flip), std::runtime_error);
  // A vocabulary count that claims more table than the file holds (CRC fixed) is rejected
  // before anything is allocated from it.
  Profile small = p;
  small.token_vocab = 3;
  small.token_kv.resize(3 * 2 * size_t(p.shape.kv_dim()));
  auto sb = serialize_profile(small);
  const uint32_t jlen = uint32_t(sb[12]) | uint32_t(sb[13]) << 8 | uint32_t(sb[14]) << 16 | uint32_t(sb[15]) << 24;
  const size_t vocab_at = 16 + jlen + 8 * size_t(lane_count(p.shape));
  REQUIRE((uint32_t(sb[vocab_at]) | uint32_t(sb[vocab_at + 1]) << 8) == 3);
  sb[vocab_at + 2] = 0x10;  // vocab = 3 + 2^20 > kMaxTokenVocab
  reseal(sb);
  CHECK_THROWS_AS(parse_profile(sb), std::runtime_error);
  sb[vocab_at + 2] = 0, sb[vocab_at] = 0xFF, sb[vocab_at + 1] = 0xFF;  // 65535 ids: more than the file has
  reseal(sb);
  CHECK_THROWS_AS(parse_profile(sb), std::runtime_error);
}

TEST_CASE("token-table blobs rebuild layer 0 from ids and decode layers 1.. like the plain profile", "[codec][chunk][token]") {
  const auto& fx = DecoderFixture::get();
  const KvCache& kv = fx.context;
  const size_t d = size_t(kv.shape.kv_dim());
  KvCache orig_pre = kv;
  rope_remove_from_keys(orig_pre, 0);
  for (int level = 0; level < 3; ++level) {
    const auto plain = encode_chunks(kv, fx.profile, level);
    const auto tt = encode_chunks(kv, fx.profile_tt, level);
    REQUIRE(plain.size() == tt.size());
    size_t plain_bytes = 0, tt_bytes = 0;
    for (size_t c = 0; c < tt.size(); ++c) {
      const BlobHeader h = parse_blob_header(tt[c]);
      CHECK(h.flags == kBlobFlagTokenLayer);
      CHECK(parse_blob_header(plain[c]).flags == 0);
      const QuantLayout lay = parse_quant_layout(tt[c], h);
      CHECK(lay.skip_values == 2ull * h.tokens * d);
      CHECK(lay.values == lay.skip_values * size_t(kv.shape.n_layers - 1));
      plain_bytes += plain[c].size(), tt_bytes += tt[c].size();
    }
    INFO("level " << level << ": plain " << plain_bytes << " B, token table " << tt_bytes << " B");
    CHECK(tt_bytes < plain_bytes);
    for (bool pre : {true, false}) {
      const KvCache a = decode_all(plain, fx.profile, kv, pre);
      KvCache b(kv.shape, kv.model_name, kv.rope_theta, pre);
      b.resize(kv.num_tokens());
      for (const auto& blob : tt) decode_chunk(blob, &fx.profile_tt, b);
      CHECK(b.tokens == kv.tokens);  // token-table blobs carry their ids
      for (int l = 1; l < kv.shape.n_layers; ++l) {
        CHECK(std::memcmp(a.k[l].data(), b.k[l].data(), a.k[l].size() * 4) == 0);
        CHECK(std::memcmp(a.v[l].data(), b.v[l].data(), a.v[l].size() * 4) == 0);
      }
      // Layer 0: the table's rows (pre-RoPE) — the model's own values, not a quantization.
      double err_k = 0, err_v = 0;
      for (size_t t = 0; t < kv.num_tokens(); ++t)
        for (size_t c = 0; c < d; ++c) {
          const float* kr = fx.profile_tt.token_row(uint32_t(kv.tokens[t]), 0);
          const float* vr = fx.profile_tt.token_row(uint32_t(kv.tokens[t]), 1);
          if (pre) CHECK(b.k[0][t * d + c] == kr[c]);
          CHECK(b.v[0][t * d + c] == vr[c]);
          err_k = std::max(err_k, double(std::abs(b.k[0][t * d + c] - (pre ? orig_pre : kv).k[0][t * d + c])));
          err_v = std::max(err_v, double(std::abs(b.v[0][t * d + c] - kv.v[0][t * d + c])));
        }
      CHECK(err_v == 0.0);   // V: bit for bit what the model produced in context
      CHECK(err_k < 1e-5);   // K: up to the float rounding of removing / re-applying RoPE
    }
  }
}

TEST_CASE("a cache whose layer 0 does not match the table codes layer 0 instead", "[codec][chunk][token]") {
  const auto& fx = DecoderFixture::get();
  KvCache kv = fx.context;
  std::vector<int32_t> wrong = kv.tokens;
  for (auto& t : wrong) t = (t + 7) % fx.model.config().vocab_size;  // real ids, the wrong ones
  kv.tokens = wrong;
  const auto blobs = encode_chunks(kv, fx.profile_tt, 0);
  for (const auto& b : blobs) CHECK(parse_blob_header(b).flags == 0);
  const KvCache a = decode_all(blobs, fx.profile_tt, kv, false);
  const KvCache ref = decode_all(encode_chunks(kv, fx.profile, 0), fx.profile, kv, false);
  for (int l = 0; l < kv.shape.n_layers; ++l) CHECK(a.v[l] == ref.v[l]);
  // Negative ids (unknown tokens) fall back the same way.
  kv.tokens.assign(kv.num_tokens(), -1);
  for (const auto& b : encode_chunks(kv, fx.profile_tt, 1)) CHECK(parse_blob_header(b).flags == 0);
}

TEST_CASE("token-table blobs: bad ids, missing table, flags and every byte flip are rejected", "[codec][chunk][token][corrupt]") {
  const auto& fx = DecoderFixture::get();
  const auto blobs = encode_chunks(fx.context, fx.profile_tt, 1, 16);
  const std::vector<uint8_t>& good = blobs[2];
  KvCache out(fx.context.shape, "", fx.profile_tt.rope_theta, false);
  out.resize(fx.context.num_tokens());
  CpuDecoder dec;
  dec.set_profile(fx.profile_tt);
  KvBuffer buf = dec.allocate(fx.context.shape, Dtype::F16, uint32_t(fx.context.num_tokens()), 0, false,
                              fx.profile_tt.rope_theta);
  REQUIRE_NOTHROW(decode_chunk(good, &fx.profile_tt, out));
  // Ids beyond the vocabulary: the same blob against a profile whose table covers only ids 0, 1.
  Profile small = fx.profile_tt;
  small.token_vocab = 2;
  small.token_kv.resize(2 * 2 * size_t(small.shape.kv_dim()));
  std::vector<uint8_t> other = good;  // the same blob claiming the smaller profile's hash
  const uint64_t hs = small.hash();
  for (int i = 0; i < 8; ++i) other[20 + i] = uint8_t(hs >> (8 * i));
  reseal(other);
  CHECK_THROWS_WITH(decode_chunk(other, &small, out), Catch::Contains("outside the profile's vocabulary"));
  CHECK_THROWS_WITH(decode_quant_emulated(other, small, buf.dest), Catch::Contains("outside the profile's vocabulary"));
  // The flag on a version-1 blob, an unknown flag, and the flag on a baseline are rejected.
  for (auto [ver, flags] : {std::pair{1, 1}, {2, 2}, {2, 0x81}}) {
    std::vector<uint8_t> b = good;
    b[2] = uint8_t(ver), b[5] = uint8_t(flags);
    reseal(b);
    CHECK_THROWS_AS(parse_blob_header(b), CorruptBlob);
  }
  const auto text = encode_chunks(fx.context, fx.profile_tt, 0, 16, 4096, Method::Fp16);
  std::vector<uint8_t> fl = text[0];
  fl[5] = kBlobFlagTokenLayer;
  reseal(fl);
  CHECK_THROWS_AS(parse_blob_header(fl), CorruptBlob);
  // Every byte flipped behind a recomputed CRC: a clean error or a decode, never a crash. The
  // re-sealed blobs go through the CPU decoder, whose tables are built once (decode_chunk()'s
  // engine; decode_chunk() itself re-hashes the 340 KB profile on every call), and through the
  // emulated device path.
  int rejected = 0;
  for (size_t i = 0; i + 4 < good.size(); ++i) {
    std::vector<uint8_t> b = good;
    b[i] ^= 0x5A;
    std::vector<uint8_t> sealed = b;
    reseal(sealed);
    CHECK_THROWS_AS(decode_chunk(b, &fx.profile_tt, out), CorruptBlob);  // CRC catches it
    try {
      dec.decode(sealed, buf.dest);
    } catch (const std::exception&) {
      ++rejected;
    }
    try {
      decode_quant_emulated(sealed, fx.profile_tt, buf.dest);
    } catch (const std::exception&) {
    }
  }
  CHECK(rejected > int(good.size()) / 4);
  // Every truncation is rejected.
  for (size_t n = 0; n < good.size(); ++n) {
    std::vector<uint8_t> t(good.begin(), good.begin() + long(n));
    CHECK_THROWS(decode_chunk(t, &fx.profile_tt, out));
  }
}
