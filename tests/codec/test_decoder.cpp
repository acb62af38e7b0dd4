// Decoder interface (CPU) and the CUDA decode path's shared KVSTREAM_HD functions, run on the host:
// bit-identity with the codec's own decoder on real stories260K chunks, rejection of bad input,
// and the run-time choice of decoder without a device.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>

#include "codec/decode_hd.h"
#include "codec/decode_prep.h"
#include "codec/half.h"
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

// What the CPU reference produces for one blob: decode_chunk() into a KvCache, then the dtype.
std::vector<uint8_t> reference_bytes(std::span<const uint8_t> blob, const Profile& p, bool pre_rope, Dtype dt) {
  const BlobHeader h = parse_blob_header(blob);
  KvCache kv(h.shape, "", p.rope_theta, pre_rope);
  kv.resize(h.tokens);  // decode_chunk writes only into existing rows
  decode_chunk(blob, &p, kv, nullptr, h.first_pos);
  std::vector<uint8_t> out;
  for (int l = 0; l < h.shape.n_layers; ++l)
    for (const auto* t : {&kv.k[size_t(l)], &kv.v[size_t(l)]}) {
      const size_t n = t->size();
      const size_t at = out.size();
      out.resize(at + n * dest_elem_bytes(dt));
      if (dt == Dtype::F32) std::memcpy(out.data() + at, t->data(), n * 4);
      else if (dt == Dtype::F16) f32_to_f16(t->data(), reinterpret_cast<uint16_t*>(out.data() + at), n);
      else f32_to_bf16(t->data(), reinterpret_cast<uint16_t*>(out.data() + at), n);
    }
  return out;
}

uint32_t escapes_of(std::span<const uint8_t> blob) {
  const BlobHeader h = parse_blob_header(blob);
  return parse_quant_layout(blob, h).escapes;
}

}  // namespace

TEST_CASE("f32_to_f16_hd/f32_to_bf16_hd equal half.h on every float pattern class", "[codec][decoder]") {
  // A stride through all 2^32 bit patterns (odd stride: every exponent and low-bit pattern), plus
  // the rounding boundaries around half's normal/subnormal/overflow thresholds.
  uint64_t mismatches = 0, n = 0;
  for (uint64_t u = 0; u < (uint64_t(1) << 32); u += 251, ++n) {
    float f;
    const uint32_t b = uint32_t(u);
    std::memcpy(&f, &b, 4);
    mismatches += f32_to_f16_hd(f) != f32_to_f16(f);
    mismatches += f32_to_bf16_hd(f) != f32_to_bf16(f);
  }
  for (uint32_t base : {0x477FF000u, 0x38800000u, 0x33000000u, 0x7F800000u, 0x00000001u})
    for (int64_t dlt = -4096; dlt <= 4096; ++dlt)
      for (uint32_t sign : {0u, 0x80000000u}) {
        const uint32_t b = (uint32_t(int64_t(base) + dlt) & 0x7FFFFFFFu) | sign;
        float f;
        std::memcpy(&f, &b, 4);
        mismatches += f32_to_f16_hd(f) != f32_to_f16(f);
        mismatches += f32_to_bf16_hd(f) != f32_to_bf16(f);
      }
  CHECK(n > 17000000);
  CHECK(mismatches == 0);
}

TEST_CASE("dequant_hd reproduces the profile's decode tables bit for bit", "[codec][decoder]") {
  const auto& fx = DecoderFixture::get();
  for (int level = 0; level < int(fx.profile.levels.size()); ++level) {
    const LevelDecodeTables t = build_decode_tables(fx.profile, level);
    size_t compared = 0, bad = 0;
    for (int lane = 0; lane < t.lanes; ++lane) {
      const size_t k = size_t(lane);
      REQUIRE(t.escape[k] + 1u == fx.profile.levels[size_t(level)].tables[k].freq.size());
      REQUIRE(t.q_min[k] == fx.profile.levels[size_t(level)].q_min[k]);
      for (uint32_t s = 0; s < t.escape[k]; ++s, ++compared) {
        const float a = dequant_hd(t.mean[k], t.step[k], int64_t(t.q_min[k]) + s);
        const float b = t.value[k * 256 + s];
        bad += std::memcmp(&a, &b, 4) != 0;
      }
      // escape values: the decoder's expression t.mean + t.step * float(q) over a range of q
      for (int64_t q : {int64_t(-100000), int64_t(-1), int64_t(0), int64_t(777), int64_t(2147483647)}) {
        const float a = dequant_hd(t.mean[k], t.step[k], q);
        const float b = t.mean[size_t(lane)] + t.step[size_t(lane)] * float(q);
        bad += std::memcmp(&a, &b, 4) != 0;
      }
    }
    CHECK(compared > 1000);
    CHECK(bad == 0);
  }
}

TEST_CASE("rope_cs_rows + rope_pair_hd equal rope_rotate_rows on real keys", "[codec][decoder]") {
  const auto& fx = DecoderFixture::get();
  const KvShape s = fx.context.shape;
  for (uint32_t pos0 : {0u, 5u, 511u, 100000u, 2000000000u}) {
    for (bool inverse : {false, true}) {
      std::vector<float> a(fx.context.k[2].begin(), fx.context.k[2].begin() + 40 * s.kv_dim());
      std::vector<float> b = a;
      float* base = a.data();
      rope_rotate_rows(&base, 1, 40, s.n_kv_heads, s.head_dim, int(pos0), fx.profile.rope_theta, inverse);
      std::vector<float> cs(40 * size_t(s.head_dim));
      rope_cs_rows(fx.profile.rope_theta, s.head_dim, pos0, 40, inverse, cs.data());
      for (size_t t = 0; t < 40; ++t)
        for (int h = 0; h < s.n_kv_heads; ++h)
          for (int j = 0; j < s.head_dim / 2; ++j) {
            float* x = b.data() + t * s.kv_dim() + h * s.head_dim + 2 * j;
            const float* c = cs.data() + (t * (s.head_dim / 2) + j) * 2;
            rope_pair_hd(x[0], x[1], c[0], c[1], x[0], x[1]);
          }
      INFO("pos0 " << pos0 << " inverse " << inverse);
      CHECK(std::memcmp(a.data(), b.data(), a.size() * 4) == 0);
    }
  }
}

TEST_CASE("CPU Decoder equals the codec's own decode_chunk on real chunks", "[codec][decoder]") {
  const auto& fx = DecoderFixture::get();
  CpuDecoder dec;
  dec.set_profile(fx.profile);
  for (int level = 0; level < 3; ++level)
    for (Dtype dt : {Dtype::F32, Dtype::F16, Dtype::BF16})
      for (bool pre : {false, true}) {
        const auto blobs = encode_chunks(fx.context, fx.profile, level);
        KvBuffer buf = dec.allocate(fx.context.shape, dt, uint32_t(fx.context.num_tokens()), 0, pre,
                                    fx.profile.rope_theta);
        std::vector<std::span<const uint8_t>> spans(blobs.begin(), blobs.end());
        dec.submit(spans, buf.dest);  // all chunks in one call
        dec.finish();
        // Per blob, the rows equal decode_chunk() + conversion.
        for (const auto& blob : blobs) {
          const BlobHeader h = parse_blob_header(blob);
          const auto want = reference_bytes(blob, fx.profile, pre, dt);
          const size_t row = size_t(fx.context.shape.kv_dim()) * dest_elem_bytes(dt), tensor = h.tokens * row;
          std::vector<uint8_t> got;
          for (int l = 0; l < fx.context.shape.n_layers; ++l)
            for (int kind = 0; kind < 2; ++kind) {
              const auto all = dec.read_back(buf.dest, l, kind, buf.dest.capacity);
              got.insert(got.end(), all.begin() + std::ptrdiff_t(h.first_pos * row),
                         all.begin() + std::ptrdiff_t(h.first_pos * row + tensor));
            }
          INFO("level " << level << " dtype " << dtype_name(dt) << " pre " << pre << " pos " << h.first_pos);
          REQUIRE(byte_diff(got, want) == 0);
        }
        // And the decoded values are close to the original cache (sanity: it is a real decode).
        if (dt == Dtype::F32 && !pre && level == 0) {
          const auto k0 = dec.read_back(buf.dest, 0, 0, buf.dest.capacity);
          const float* k = reinterpret_cast<const float*>(k0.data());
          double err = 0;
          for (size_t i = 0; i < fx.context.k[0].size(); ++i) err = std::max(err, double(std::abs(k[i] - fx.context.k[0][i])));
          CHECK(err < 0.05);
        }
      }
}

TEST_CASE("host run of the CUDA kernels' code is bit-identical to the CPU decoder", "[codec][decoder]") {
  const auto& fx = DecoderFixture::get();
  CpuDecoder dec;
  uint64_t escapes = 0, streams_max = 0, compared = 0, token_blobs = 0;
  for (const Profile* prof : {&fx.profile, &fx.profile_tt})  // without / with the layer-0 token table
  for (int level = 0; level < 3; ++level)
    for (int sps : {4096, 97, 1000000})  // 4 groups, many short groups (some of under 16 words), one group
      for (Dtype dt : {Dtype::F16, Dtype::BF16, Dtype::F32})
        for (bool pre : {false, true}) {
          dec.set_profile(*prof);
          const auto blobs = encode_chunks(fx.context, *prof, level, 64, sps);
          const uint32_t T = uint32_t(fx.context.num_tokens());
          KvBuffer cpu = dec.allocate(fx.context.shape, dt, T, 0, pre, prof->rope_theta);
          KvBuffer emu = dec.allocate(fx.context.shape, dt, T, 0, pre, prof->rope_theta);
          for (const auto& blob : blobs) {
            dec.decode(blob, cpu.dest);
            decode_quant_emulated(blob, *prof, emu.dest);
            token_blobs += parse_blob_header(blob).flags == kBlobFlagTokenLayer;
            escapes += escapes_of(blob);
            streams_max = std::max<uint64_t>(streams_max, parse_quant_layout(blob, parse_blob_header(blob)).streams);
          }
          const auto a = dest_bytes(dec, cpu.dest, T), b = dest_bytes(dec, emu.dest, T);
          INFO("token table " << prof->has_token_table() << " level " << level << " symbols/stream " << sps
               << " dtype " << dtype_name(dt) << " pre " << pre);
          REQUIRE(a.size() == b.size());
          CHECK(byte_diff(a, b) == 0);
          compared += a.size();
        }
  CHECK(token_blobs == 3 * 3 * 3 * 2 * 5);  // every blob made with the token-table profile uses it
  CHECK(escapes > 100);      // the "tail" level exercises the escape path
  CHECK(streams_max > 100);  // and some chunks have over a hundred groups
  CHECK(compared > 10000000);
}

TEST_CASE("emulated device path rejects corrupt streams exactly when the CPU decoder does", "[codec][decoder]") {
  const auto& fx = DecoderFixture::get();
  CpuDecoder dec;
  dec.set_profile(fx.profile);
  const auto blobs = encode_chunks(fx.context, fx.profile, 2, 64, 500);
  const std::vector<uint8_t>& good = blobs[1];
  const BlobHeader h = parse_blob_header(good);
  const QuantLayout lay = parse_quant_layout(good, h);
  std::mt19937 rng(7);
  int rejected = 0, trials = 0;
  KvBuffer a = dec.allocate(fx.context.shape, Dtype::F16, 300, 0, false, fx.profile.rope_theta);
  KvBuffer b = dec.allocate(fx.context.shape, Dtype::F16, 300, 0, false, fx.profile.rope_theta);
  for (int trial = 0; trial < 200; ++trial, ++trials) {
    std::vector<uint8_t> bad = good;
    // flip a byte in the stream data, the group directory (final states, word counts) or the
    // escape list; then fix the CRC
    const int where = trial % 3;
    size_t at;
    if (where == 0) at = lay.offset[0] + rng() % (lay.offset[lay.streams] - lay.offset[0]);
    else if (where == 1) at = kBlobHeaderBytes + rng() % (lay.escape_offset - kBlobHeaderBytes);
    else at = lay.escape_offset + rng() % std::max<size_t>(1, lay.escape_end - lay.escape_offset);
    bad[at] ^= uint8_t(1u << (rng() % 8));
    reseal(bad);
    bool cpu_ok = true, emu_ok = true;
    try {
      dec.decode(bad, a.dest);
    } catch (const CorruptBlob&) {
      cpu_ok = false;
    }
    try {
      decode_quant_emulated(bad, fx.profile, b.dest);
    } catch (const CorruptBlob&) {
      emu_ok = false;
    }
    INFO("trial " << trial << " byte " << at);
    REQUIRE(cpu_ok == emu_ok);
    if (cpu_ok) CHECK(byte_diff(dest_bytes(dec, a.dest, 300), dest_bytes(dec, b.dest, 300)) == 0);
    rejected += !cpu_ok;
  }
  CHECK(rejected > trials / 2);
  // Truncation and an unsealed flip are caught before any stream is decoded.
  std::vector<uint8_t> cut(good.begin(), good.end() - 9);
  CHECK_THROWS_AS(decode_quant_emulated(cut, fx.profile, b.dest), CorruptBlob);
  std::vector<uint8_t> flip = good;
  flip[lay.offset[0]] ^= 1;
  CHECK_THROWS_AS(dec.decode(flip, a.dest), CorruptBlob);
}

TEST_CASE("CPU Decoder: rows, pos_base, baselines and bad destinations", "[codec][decoder]") {
  const auto& fx = DecoderFixture::get();
  CpuDecoder dec;
  dec.set_profile(fx.profile);
  const KvShape s = fx.context.shape;
  // Chunks encoded at positions 1000.. land at rows pos - pos_base.
  const auto blobs = encode_chunks(fx.context, fx.profile, 0, 64, 4096, Method::Quant, 1000);
  KvBuffer buf = dec.allocate(s, Dtype::F16, 300, 1000, false, fx.profile.rope_theta);
  for (const auto& b : blobs) dec.submit(b, buf.dest);
  dec.finish();
  const auto row1 = dec.read_back(buf.dest, 1, 1, 300);  // V of layer 1 (no RoPE): equals the source rows
  KvCache ref(s, "", fx.profile.rope_theta, false);
  ref.resize(300);
  for (const auto& b : blobs) decode_chunk(b, &fx.profile, ref, nullptr, 1000);
  std::vector<uint16_t> want(ref.v[1].size());
  f32_to_f16(ref.v[1].data(), want.data(), want.size());
  CHECK(std::memcmp(row1.data(), want.data(), row1.size()) == 0);
  CHECK(dec.stats().blobs == blobs.size());
  CHECK(dec.stats().output_bytes == 300ull * s.kv_dim() * 2 * 2 * s.n_layers);

  // offset_rows: the same tensors seen from row 64.
  const KvDest shifted = buf.dest.offset_rows(64);
  CHECK(shifted.capacity == 236);
  CHECK(static_cast<uint8_t*>(shifted.k[0]) - static_cast<uint8_t*>(buf.dest.k[0]) == 64 * s.kv_dim() * 2);

  // Out-of-range rows, wrong shape, device memory and text blobs are refused, nothing written.
  KvBuffer small = dec.allocate(s, Dtype::F16, 64, 1000);
  CHECK_THROWS_AS(dec.decode(blobs[1], small.dest), std::invalid_argument);
  KvBuffer early = dec.allocate(s, Dtype::F16, 300, 1001);
  CHECK_THROWS_AS(dec.decode(blobs[0], early.dest), std::invalid_argument);
  KvShape other = s;
  other.n_layers = 4;
  KvBuffer wrong = dec.allocate(other, Dtype::F16, 300, 1000);
  CHECK_THROWS_AS(dec.decode(blobs[0], wrong.dest), std::invalid_argument);
  KvDest dev = buf.dest;
  dev.on_device = true;
  CHECK_THROWS_AS(dec.decode(blobs[0], dev), std::invalid_argument);
  const auto text = encode_chunks(fx.context, fx.profile, 0, 64, 4096, Method::Text);
  KvBuffer plain = dec.allocate(s, Dtype::F16, 300);
  CHECK_THROWS_AS(dec.decode(text[0], plain.dest), std::invalid_argument);
  for (const auto& b : dest_bytes(dec, small.dest, 64)) REQUIRE(b == 0);

  // Baselines decode through the same interface, equal to decode_chunk + conversion.
  for (Method m : {Method::Fp16, Method::Q8, Method::Q4, Method::ZstdFp16}) {
    const auto bl = encode_chunks(fx.context, fx.profile, 0, 64, 4096, m);
    for (bool pre : {false, true}) {
      KvBuffer o = dec.allocate(s, Dtype::F16, 300, 0, pre, fx.profile.rope_theta);
      for (const auto& b : bl) dec.decode(b, o.dest);
      std::vector<uint8_t> want_all;
      for (int l = 0; l < s.n_layers; ++l)
        for (int kind = 0; kind < 2; ++kind) {
          std::vector<uint8_t> t;
          for (const auto& b : bl) {
            const auto r = reference_bytes(b, fx.profile, pre, Dtype::F16);
            const size_t tensor = r.size() / (2 * size_t(s.n_layers));
            t.insert(t.end(), r.begin() + std::ptrdiff_t((2 * l + kind) * tensor),
                     r.begin() + std::ptrdiff_t((2 * l + kind + 1) * tensor));
          }
          want_all.insert(want_all.end(), t.begin(), t.end());
        }
      INFO(method_name(m) << " pre " << pre);
      CHECK(byte_diff(dest_bytes(dec, o.dest, 300), want_all) == 0);
    }
  }
  // A quant blob needs the profile.
  CpuDecoder bare;
  KvBuffer o = bare.allocate(s, Dtype::F16, 300);
  CHECK_THROWS_AS(bare.decode(blobs[0], o.dest), std::invalid_argument);
}

TEST_CASE("make_decoder: cpu always, auto falls back to CPU and cuda fails clearly without a device",
          "[codec][decoder]") {
  std::string note;
  CHECK(make_decoder("cpu", &note)->name() == "cpu");
  CHECK_THROWS_AS(make_decoder("gpu"), std::invalid_argument);
  const CudaProbe p = probe_cuda();
  INFO("probe: compiled " << p.compiled << ", devices " << p.devices << ", " << p.message);
  CHECK(!p.message.empty());
  if (p.compiled && p.devices > 0) {
    CHECK(make_decoder("auto", &note)->name() == "cuda");
    CHECK(make_decoder("cuda")->name() == "cuda");
  } else {
    auto d = make_decoder("auto", &note);
    CHECK(d->name() == "cpu");
    CHECK(note.find("falling back to the CPU decoder") != std::string::npos);
    try {
      make_decoder("cuda");
      FAIL("make_decoder(\"cuda\") should throw without a device");
    } catch (const std::runtime_error& e) {
      const std::string msg = e.what();
      CHECK(msg.find("CUDA decoder requested but") != std::string::npos);
      CHECK((msg.find("no CUDA device") != std::string::npos || msg.find("built without") != std::string::npos));
    }
  }
}
