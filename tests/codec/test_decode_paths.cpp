// The CPU decoder's dispatch paths (scalar, AVX2, AVX-512: each forced in turn), caller-described
// destination layouts (padded, interleaved, paged, head-major), blob format 2 compatibility, the
// benchmark's reference decoder, and the SSE4.2 CRC32C — all bit for bit on real stories260K chunks.
#include <catch2/catch.hpp>

#include "tests/test_skip.h"

#include <cstring>
#include <numeric>
#include <random>

#include "bench/bench_reference.h"
#include "codec/crc32c.h"
#include "codec/decode_engine.h"
#include "codec/decode_engine_simd.h"
#include "codec/decode_prep.h"
#include "codec/half.h"
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

// The paths this CPU has (Scalar always), and a guard that restores automatic choice.
std::vector<DecodePath> paths() {
  std::vector<DecodePath> v;
  for (DecodePath p : {DecodePath::Scalar, DecodePath::Avx2, DecodePath::Avx512})
    if (decode_path_available(p)) v.push_back(p);
  return v;
}
struct PathGuard {
  ~PathGuard() { set_decode_path(DecodePath::Auto); }
};

// Every chunk into a fresh contiguous buffer through one CpuDecoder submit; the destination bytes.
std::vector<uint8_t> decode_set(const std::vector<std::vector<uint8_t>>& blobs, const Profile& p, Dtype dt, bool pre,
                                uint32_t rows) {
  CpuDecoder dec;
  dec.set_profile(p);
  KvBuffer buf = dec.allocate(p.shape, dt, rows, 0, pre, p.rope_theta);
  const std::vector<std::span<const uint8_t>> spans(blobs.begin(), blobs.end());
  dec.submit(spans, buf.dest);
  return dest_bytes(dec, buf.dest, rows);
}

// A destination over `mem` in one of the test layouts (rows tokens): 0 packed, 1 padded rows,
// 2 K and V interleaved per token, 3 paged [blocks][bs][heads][dim] with a scattered slot mapping
// (and unmapped slots), 4 paged head-major [blocks][heads][bs][dim].
struct Layout {
  KvDest dest;
  std::vector<uint8_t> mem;
  std::vector<int64_t> slots;
};
Layout make_layout(int kind, const KvShape& s, Dtype dt, uint32_t rows, bool pre, float theta) {
  Layout L;
  KvDest& d = L.dest;
  d.shape = s, d.dtype = dt, d.capacity = rows, d.keys_pre_rope = pre, d.rope_theta = theta;
  const size_t es = dest_elem_bytes(dt), head = size_t(s.head_dim) * es, row = size_t(s.kv_dim()) * es;
  size_t tensor = 0, kv_offset = 0;  // bytes per layer-tensor, offset of V from K
  if (kind == 0 || kind == 1) {
    d.token_stride = kind == 1 ? row + 3 * es : 0;
    tensor = size_t(rows) * d.token_stride_bytes();
    kv_offset = tensor;
    tensor *= 2;
  } else if (kind == 2) {
    d.token_stride = 2 * row;
    tensor = size_t(rows) * 2 * row;
    kv_offset = row;
  } else {
    d.block_size = 16;
    d.num_blocks = (rows + 15) / 16 + 3;  // spare blocks: the mapping scatters rows over them
    if (kind == 4) d.token_stride = head, d.head_stride = size_t(d.block_size) * head;
    tensor = size_t(d.num_blocks) * d.block_stride_bytes();
    kv_offset = tensor;
    tensor *= 2;
    std::vector<int64_t> free_slots(size_t(d.num_blocks) * d.block_size);
    std::iota(free_slots.begin(), free_slots.end(), 0);
    std::shuffle(free_slots.begin(), free_slots.end(), std::mt19937(5));
    L.slots.assign(free_slots.begin(), free_slots.begin() + rows);
    for (uint32_t r = 7; r < rows; r += 50) L.slots[r] = -1;  // rows not stored (padding)
    d.slot_mapping = L.slots;
  }
  L.mem.assign(tensor * size_t(s.n_layers), 0);
  for (int l = 0; l < s.n_layers; ++l) {
    d.k.push_back(L.mem.data() + size_t(l) * tensor);
    d.v.push_back(L.mem.data() + size_t(l) * tensor + kv_offset);
  }
  d.validate();
  return L;
}

}  // namespace

TEST_CASE("every decode path is bit-identical to the scalar path on real chunks", "[codec][decoder][paths]") {
  const auto& fx = DecoderFixture::get();
  const PathGuard guard;
  const uint32_t T = uint32_t(fx.context.num_tokens());
  INFO("paths on this CPU: " << paths().size() << " (best " << decode_path_name(best_decode_path()) << ")");
  if (paths().size() == 1) kvstream::testing::skip_test("this CPU has no AVX2: there is no second path to compare");
  size_t compared = 0;
  for (const Profile* prof : {&fx.profile, &fx.profile_tt})
    for (int level = 0; level < 3; ++level)
      for (int sps : {1 << 18, 97, 1}) {  // one group per chunk; many; one round per group (tails everywhere)
        const auto blobs = encode_chunks(fx.context, *prof, level, 64, sps);
        for (Dtype dt : {Dtype::F16, Dtype::BF16, Dtype::F32})
          for (bool pre : {false, true}) {
            if (dt != Dtype::F16 && level != 2) continue;  // other dtypes: on the level with escapes
            set_decode_path(DecodePath::Scalar);
            const auto want = decode_set(blobs, *prof, dt, pre, T);
            for (DecodePath p : paths()) {
              set_decode_path(p);
              INFO("path " << decode_path_name(p) << " token table " << prof->has_token_table() << " level " << level
                           << " symbols/group " << sps << " dtype " << dtype_name(dt) << " pre " << pre);
              REQUIRE(byte_diff(decode_set(blobs, *prof, dt, pre, T), want) == 0);
              // and one blob at a time through decode_chunk (single-group batches)
              KvCache kv(prof->shape, "", prof->rope_theta, pre);
              kv.resize(T);
              if (dt == Dtype::F32) {
                for (const auto& b : blobs) decode_chunk(b, prof, kv);
                std::vector<uint8_t> got;
                for (int l = 0; l < kv.shape.n_layers; ++l)
                  for (const auto* t : {&kv.k[size_t(l)], &kv.v[size_t(l)]}) {
                    const auto* bytes = reinterpret_cast<const uint8_t*>(t->data());
                    got.insert(got.end(), bytes, bytes + t->size() * 4);
                  }
                REQUIRE(byte_diff(got, want) == 0);
              }
              compared += want.size();
            }
          }
      }
  CHECK(compared > 3000000);
}

TEST_CASE("the SIMD conversions equal half.h on every float pattern class", "[codec][decoder][paths]") {
  const PathGuard guard;
  std::vector<float> in;
  for (uint64_t u = 0; u < (uint64_t(1) << 32); u += 4099) {
    const uint32_t b = uint32_t(u);
    float f;
    std::memcpy(&f, &b, 4);
    in.push_back(f);
  }
  for (uint32_t base : {0x477FF000u, 0x38800000u, 0x33000000u, 0x7F800000u, 0x00000001u, 0x7F7FFFFFu})
    for (int64_t dlt = -2048; dlt <= 2048; ++dlt)
      for (uint32_t sign : {0u, 0x80000000u}) {
        const uint32_t b = (uint32_t(int64_t(base) + dlt) & 0x7FFFFFFFu) | sign;
        float f;
        std::memcpy(&f, &b, 4);
        in.push_back(f);
      }
  in.resize(in.size() / 16 * 16 + 5);  // a tail the vector loops leave to scalar code
  for (DecodePath p : paths()) {
    set_decode_path(p);
    for (Dtype dt : {Dtype::F16, Dtype::BF16}) {
      std::vector<uint16_t> got(in.size()), want(in.size());
      convert_floats(in.data(), in.size(), dt, reinterpret_cast<uint8_t*>(got.data()));
      for (size_t i = 0; i < in.size(); ++i) want[i] = dt == Dtype::F16 ? f32_to_f16(in[i]) : f32_to_bf16(in[i]);
      size_t bad = 0;
      for (size_t i = 0; i < in.size(); ++i) bad += got[i] != want[i];
      INFO("path " << decode_path_name(p) << " " << dtype_name(dt) << " over " << in.size() << " floats");
      CHECK(bad == 0);
    }
    // Every length up to 40: a head of 8 values (head-major stores convert one head at a time)
    // and every tail length 1-15 after the vector loops; nothing past n is written.
    for (size_t n = 1; n <= 40; ++n) {
      std::vector<uint16_t> got(n + 1, 0xBEEF);
      convert_floats(in.data() + 1000, n, Dtype::BF16, reinterpret_cast<uint8_t*>(got.data()));
      size_t bad = 0;
      for (size_t i = 0; i < n; ++i) bad += got[i] != f32_to_bf16(in[1000 + i]);
      INFO("path " << decode_path_name(p) << ", " << n << " floats");
      CHECK(bad == 0);
      CHECK(got[n] == 0xBEEF);
    }
  }
}

TEST_CASE("caller layouts (padded, interleaved, paged, head-major) equal the plain decode", "[codec][decoder][layout]") {
  const auto& fx = DecoderFixture::get();
  const PathGuard guard;
  const Profile& p = fx.profile_tt;
  const uint32_t T = uint32_t(fx.context.num_tokens());
  const auto blobs = encode_chunks(fx.context, p, 1, 64);
  const std::vector<std::span<const uint8_t>> spans(blobs.begin(), blobs.end());
  for (DecodePath path : paths()) {
    set_decode_path(path);
    for (Dtype dt : {Dtype::F16, Dtype::F32})  // bf16 stores like f16 (2 bytes); its rounding: the path test
      for (bool pre : {false, true}) {
        const auto want = decode_set(blobs, p, dt, pre, T);
        const size_t tensor_bytes = size_t(T) * size_t(p.shape.kv_dim()) * dest_elem_bytes(dt);
        for (int kind = 0; kind < 5; ++kind) {
          Layout L = make_layout(kind, p.shape, dt, T, pre, p.rope_theta);
          CpuDecoder dec;
          dec.set_profile(p);
          dec.submit(spans, L.dest);
          INFO("path " << decode_path_name(path) << " layout " << kind << " dtype " << dtype_name(dt) << " pre " << pre);
          // rows the mapping does not store read back as zero; all others equal the plain decode
          std::vector<uint8_t> expect = want;
          const size_t row = size_t(p.shape.kv_dim()) * dest_elem_bytes(dt);
          if (!L.slots.empty())
            for (size_t t = 0; t < 2 * size_t(p.shape.n_layers); ++t)
              for (uint32_t r = 0; r < T; ++r)
                if (L.slots[r] < 0) std::memset(expect.data() + t * tensor_bytes + r * row, 0, row);
          REQUIRE(byte_diff(dest_bytes(dec, L.dest, T), expect) == 0);
          // and the same through decode_chunk() and the emulated device path, blob by blob
          Layout M = make_layout(kind, p.shape, dt, T, pre, p.rope_theta);
          Layout E = make_layout(kind, p.shape, dt, T, pre, p.rope_theta);
          for (const auto& b : blobs) decode_chunk(b, &p, M.dest), decode_quant_emulated(b, p, E.dest);
          CHECK(M.mem == L.mem);
          CHECK(E.mem == L.mem);
        }
      }
  }
}

TEST_CASE("KvDest rejects inconsistent layouts and slots", "[codec][decoder][layout]") {
  const auto& fx = DecoderFixture::get();
  const KvShape s = fx.profile.shape;
  Layout L = make_layout(3, s, Dtype::F16, 100, false, fx.profile.rope_theta);
  KvDest d = L.dest;
  CHECK_NOTHROW(d.validate());
  d.slot_mapping = std::span<const int64_t>(L.slots.data(), 50);  // fewer entries than rows
  CHECK_THROWS_AS(d.validate(), std::invalid_argument);
  d = L.dest;
  d.num_blocks = 0;
  CHECK_THROWS_AS(d.validate(), std::invalid_argument);
  d = L.dest;
  d.token_stride = 4;  // rows overlapping the heads of a row
  CHECK_THROWS_AS(d.validate(), std::invalid_argument);
  d = L.dest;
  d.block_stride = 16;
  CHECK_THROWS_AS(d.validate(), std::invalid_argument);
  // A slot beyond the blocks is refused when its row is written, before anything of that blob is.
  std::vector<int64_t> slots = L.slots;
  slots[70] = int64_t(L.dest.num_blocks) * L.dest.block_size;
  d = L.dest;
  d.slot_mapping = slots;
  CpuDecoder dec;
  dec.set_profile(fx.profile);
  const auto blobs = encode_chunks(fx.context, fx.profile, 0, 64);
  CHECK_THROWS_AS(dec.decode(blobs[1], d), std::invalid_argument);
  // offset_rows of a paged destination shifts the mapping, not the bases
  const KvDest shifted = L.dest.offset_rows(10);
  CHECK(shifted.k[0] == L.dest.k[0]);
  CHECK(shifted.slot_mapping.data() == L.slots.data() + 10);
  CHECK(shifted.capacity == 90);
}

TEST_CASE("format-2 blobs still decode, bit-identical to format 3 and to the previous decoder", "[codec][decoder][compat]") {
  const auto& fx = DecoderFixture::get();
  const PathGuard guard;
  const uint32_t T = uint32_t(fx.context.num_tokens());
  for (const Profile* prof : {&fx.profile, &fx.profile_tt})
    for (int level = 0; level < 3; ++level) {
      EncodeOptions o2;
      o2.blob_version = 2;
      o2.symbols_per_stream = 4096;
      std::vector<std::vector<uint8_t>> v2, v3;
      for (uint32_t b = 0; b < T; b += 64) {
        const uint32_t e = std::min(T, b + 64);
        v2.push_back(encode_chunk(fx.context, b, e, b, Method::Quant, prof, level, o2));
        v3.push_back(encode_chunk(fx.context, b, e, b, Method::Quant, prof, level));
        REQUIRE(parse_blob_header(v2.back()).version == 2);
        REQUIRE(parse_blob_header(v3.back()).version == kBlobVersion);
      }
      for (Dtype dt : {Dtype::F16, Dtype::F32})
        for (bool pre : {false, true}) {
          const auto a = decode_set(v3, *prof, dt, pre, T);
          INFO("token table " << prof->has_token_table() << " level " << level << " dtype " << dtype_name(dt) << " pre " << pre);
          CHECK(byte_diff(decode_set(v2, *prof, dt, pre, T), a) == 0);
          // the benchmark's reference (the previous decoder's code path) agrees too
          CpuDecoder dec;
          KvBuffer ref = dec.allocate(prof->shape, dt, T, 0, pre, prof->rope_theta);
          ReferenceCpuDecoder old(*prof);
          for (const auto& b : v2) old.decode(b, ref.dest);
          CHECK(byte_diff(dest_bytes(dec, ref.dest, T), a) == 0);
        }
    }
}

TEST_CASE("format 3 is no larger than format 2 on real chunks", "[codec][chunk][compat]") {
  const auto& fx = DecoderFixture::get();
  for (const Profile* prof : {&fx.profile, &fx.profile_tt})
    for (int level = 0; level < 3; ++level) {
      EncodeOptions o2;
      o2.blob_version = 2;
      o2.symbols_per_stream = 4096;
      size_t b2 = 0, b3 = 0;
      for (uint32_t b = 0; b < fx.context.num_tokens(); b += 64) {
        const uint32_t e = std::min<uint32_t>(uint32_t(fx.context.num_tokens()), b + 64);
        b2 += encode_chunk(fx.context, b, e, b, Method::Quant, prof, level, o2).size();
        b3 += encode_chunk(fx.context, b, e, b, Method::Quant, prof, level).size();
      }
      INFO("token table " << prof->has_token_table() << " level " << level << ": format 2 " << b2 << " B, format 3 " << b3);
      CHECK(double(b3) <= 1.005 * double(b2));
    }
}

TEST_CASE("token ids are bit-packed, padding bits and wide ids are rejected", "[codec][chunk][token]") {
  const auto& fx = DecoderFixture::get();
  const auto blobs = encode_chunks(fx.context, fx.profile_tt, 1, 64);
  const auto& b = blobs[0];
  const BlobHeader h = parse_blob_header(b);
  REQUIRE(h.flags == kBlobFlagTokenLayer);
  const QuantLayout lay = parse_quant_layout(b, h);
  for (size_t t = 0; t < lay.tokens.size(); ++t) CHECK(lay.tokens[t] == fx.context.tokens[t]);
  const uint32_t width = b[kBlobHeaderBytes];
  CHECK(width == 9);  // stories260K: 512 ids
  const size_t bytes = (64 * width + 7) / 8;
  std::vector<uint8_t> w = b;
  w[kBlobHeaderBytes] = 0;
  reseal(w);
  CHECK_THROWS_AS(parse_quant_layout(w, parse_blob_header(w)), CorruptBlob);
  w = b;
  w[kBlobHeaderBytes] = 32;
  reseal(w);
  CHECK_THROWS_AS(parse_quant_layout(w, parse_blob_header(w)), CorruptBlob);
  if ((64 * width) % 8) {  // a set padding bit in the last id byte
    w = b;
    w[kBlobHeaderBytes + bytes] |= 0x80;
    reseal(w);
    CHECK_THROWS_AS(parse_quant_layout(w, parse_blob_header(w)), CorruptBlob);
  }
}

TEST_CASE("every path rejects corrupt groups exactly when the scalar path does", "[codec][decoder][paths][corrupt]") {
  const auto& fx = DecoderFixture::get();
  const PathGuard guard;
  std::mt19937 rng(11);
  for (int sps : {1 << 18, 40}) {  // one group; groups of 3 rounds (fewer than 16 words: the tail path)
    const auto blobs = encode_chunks(fx.context, fx.profile, 2, 64, sps);
    const std::vector<uint8_t>& good = blobs[1];
    const QuantLayout lay = parse_quant_layout(good, parse_blob_header(good));
    int rejected = 0;
    for (int trial = 0; trial < 100; ++trial) {
      std::vector<uint8_t> bad = good;
      const size_t at = trial % 2 ? lay.offset[0] + rng() % (lay.offset[lay.streams] - lay.offset[0])
                                  : kBlobHeaderBytes + rng() % (lay.escape_offset - kBlobHeaderBytes);
      bad[at] ^= uint8_t(1u << (rng() % 8));
      if (trial % 5 == 0) bad.erase(bad.begin() + long(lay.offset[0]) + long(rng() % 8));  // a word short
      reseal(bad);
      std::vector<int> ok;
      std::vector<std::vector<uint8_t>> out;
      for (DecodePath p : paths()) {
        set_decode_path(p);
        CpuDecoder dec;
        dec.set_profile(fx.profile);
        KvBuffer buf = dec.allocate(fx.profile.shape, Dtype::F16, 300, 0, false, fx.profile.rope_theta);
        try {
          dec.decode(bad, buf.dest);
          ok.push_back(1);
        } catch (const CorruptBlob&) {
          ok.push_back(0);
        }
        out.push_back(dest_bytes(dec, buf.dest, 300));
      }
      INFO("symbols/group " << sps << " trial " << trial << " byte " << at);
      for (size_t i = 1; i < ok.size(); ++i) {
        REQUIRE(ok[i] == ok[0]);
        if (ok[0]) REQUIRE(out[i] == out[0]);
      }
      rejected += !ok[0];
    }
    CHECK(rejected > 60);
  }
}

TEST_CASE("crc32c: the SSE4.2 path equals the portable one at every length and offset", "[codec][crc]") {
  std::mt19937 rng(3);
  std::vector<uint8_t> buf(20000);
  for (auto& b : buf) b = uint8_t(rng());
  for (size_t n : {0, 1, 7, 8, 9, 63, 1024, 3071, 3072, 3073, 6144, 9999, 20000})
    for (size_t off : {0, 1, 5}) {
      if (off + n > buf.size()) continue;
      INFO("length " << n << " offset " << off);
      CHECK(crc32c(buf.data() + off, n) == crc32c_portable(buf.data() + off, n));
      CHECK(crc32c(buf.data() + off, n, 0x12345678u) == crc32c_portable(buf.data() + off, n, 0x12345678u));
    }
  const std::string s = "123456789";
  CHECK(crc32c_portable(reinterpret_cast<const uint8_t*>(s.data()), s.size()) == 0xE3069283u);
}
