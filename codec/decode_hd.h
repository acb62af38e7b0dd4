// decode_hd.h: the per-value arithmetic and per-stream decode loop that the CUDA chunk decoder runs
// on the device, written once as KVSTREAM_HD inline functions so that host code (tests, the host
// emulation in decode_prep.h) runs exactly the code the kernels run.
//
// Bit-exactness contract with the CPU decoder (codec/chunk_codec.cpp decode_chunk + half.h):
// - dequant_hd(mean, step, q) = mean + step * float(q), the expression build_decode_tables() and
//   the escape path use, with the multiply and the add rounded separately (no fused multiply-add:
//   on the device __fmul_rn/__fadd_rn, which nvcc never contracts; on the host plain operators,
//   which GCC does not contract in ISO C++ mode, -ffp-contract=off).
// - rope_pair_hd() is rope_rotate_rows()'s pair rotation with the same operation order, using
//   cos/sin values computed on the HOST by rope_cs_rows() (decode_prep.h) with rope.cpp's exact
//   expressions; the device never evaluates a transcendental function.
// - f32_to_f16_hd()/f32_to_bf16_hd() are half.h's round-to-nearest-even conversions, bit for bit.
// - decode_stream_hd() walks stream `st` of a Quant blob (values st, st+S, st+2S, ... in chunk
//   order, S = streams) with the codec's shared rans_decode_step(); finish_key_pair_hd() rotates
//   and stores one (2j, 2j+1) key pair. A CUDA thread runs one call; the host emulation calls them
//   in a loop. All pointers in the argument structs point into the executing side's memory.
// Errors are reported, never trapped: a stream that does not end cleanly, or an escape symbol
// whose index is not in the escape list, sets bits in status[0]; status[1] counts decoded escape
// symbols (the caller compares it with the list length). Writes stay inside the destination rows
// of the chunk whatever the stream bytes say.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "codec/rans.h"

namespace kvstream::codec {

// ---- float plumbing ----
KVSTREAM_HD inline uint32_t hd_float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}
KVSTREAM_HD inline float hd_bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}
// Separately rounded IEEE operations (never fused into an FMA).
KVSTREAM_HD inline float hd_mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
KVSTREAM_HD inline float hd_add(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
KVSTREAM_HD inline float hd_sub(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}

// ---- the shared value arithmetic ----
// Dequantization of quantized value q of a lane: mean + step * q (float(q) rounds to nearest even
// on both sides; |q| < 2^31 in valid blobs and profiles).
KVSTREAM_HD inline float dequant_hd(float mean, float step, int64_t q) {
  return hd_add(mean, hd_mul(step, static_cast<float>(q)));
}

// One RoPE pair rotation: (v0, v1) by the angle whose cosine/sine are c, s (s negated for the
// inverse rotation, as rope_rotate_rows does).
KVSTREAM_HD inline void rope_pair_hd(float v0, float v1, float c, float s, float& o0, float& o1) {
  o0 = hd_sub(hd_mul(v0, c), hd_mul(v1, s));
  o1 = hd_add(hd_mul(v0, s), hd_mul(v1, c));
}

// half.h's f32_to_f16 (RNE, overflow -> inf, subnormals kept, NaN quiet with sign).
KVSTREAM_HD inline uint16_t f32_to_f16_hd(float f) {
  const uint32_t x = hd_float_bits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7FFFFFFFu;
  if (ax > 0x7F800000u) return sign | 0x7E00u | static_cast<uint16_t>((ax >> 13) & 0x3FFu);
  if (ax >= 0x477FF000u) return sign | 0x7C00u;
  if (ax >= 0x38800000u) {
    const uint32_t r = ax - 0x38000000u;
    return sign | static_cast<uint16_t>((r + 0x0FFFu + ((r >> 13) & 1u)) >> 13);
  }
  if (ax < 0x33000000u) return sign;
  const uint32_t e = ax >> 23;
  const uint32_t sig = (ax & 0x7FFFFFu) | 0x800000u;
  const uint32_t shift = 126u - e;
  const uint32_t q = sig >> shift;
  const uint32_t rem = sig & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1u);
  const uint32_t rounded = q + ((rem > half || (rem == half && (q & 1u))) ? 1u : 0u);
  return sign | static_cast<uint16_t>(rounded);
}

// half.h's f32_to_bf16 (RNE, NaN stays NaN).
KVSTREAM_HD inline uint16_t f32_to_bf16_hd(float f) {
  const uint32_t x = hd_float_bits(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((x >> 16) | 0x0040u);
  return static_cast<uint16_t>((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

// Output element types (values of kvstream::Dtype: F32 = 0, F16 = 1, BF16 = 2).
enum : uint32_t { kHdF32 = 0, kHdF16 = 1, kHdBF16 = 2 };

KVSTREAM_HD inline void store_hd(void* base, size_t idx, uint32_t dtype, float v) {
  if (dtype == kHdF32)
    static_cast<float*>(base)[idx] = v;
  else if (dtype == kHdF16)
    static_cast<uint16_t*>(base)[idx] = f32_to_f16_hd(v);
  else
    static_cast<uint16_t*>(base)[idx] = f32_to_bf16_hd(v);
}

// ---- status words ----
enum : uint32_t { kHdBadStream = 1u, kHdBadEscape = 2u };

KVSTREAM_HD inline void hd_status_or(uint32_t* p, uint32_t bits) {
#if defined(__CUDA_ARCH__)
  atomicOr(p, bits);
#else
  *p |= bits;
#endif
}
KVSTREAM_HD inline void hd_status_add(uint32_t* p, uint32_t n) {
#if defined(__CUDA_ARCH__)
  atomicAdd(p, n);
#else
  *p += n;
#endif
}

// ---- per-chunk arguments (plain data, copied to the device as is) ----
struct LaneParam {   // one (layer, kind, channel) lane of a profile level
  float mean = 0;
  float step = 0;
  int32_t q_min = 0;   // quantized value of table symbol 0
  uint32_t escape = 0; // escape symbol (table size - 1)
};

struct HdLevel {
  const uint32_t* slots = nullptr;   // [lane << scale_bits | slot], rans.h layout
  const LaneParam* lanes = nullptr;  // [lane]
  uint32_t scale_bits = 12;
};

struct HdChunk {
  const uint8_t* data = nullptr;         // the blob bytes
  const uint32_t* offset = nullptr;      // [streams + 1] byte offsets of each stream in data
  const uint32_t* final_state = nullptr; // [streams]
  const uint32_t* esc_index = nullptr;   // [escapes] strictly increasing coded-value indices (< values)
  const int32_t* esc_q = nullptr;        // [escapes] quantized values
  uint32_t escapes = 0;
  uint32_t streams = 0;
  uint32_t values = 0;    // coded values: 2 * n_layers * tokens * kv_dim, less layer 0's if first_block
  uint32_t first_block = 0;        // 2 for a token-table blob (layer 0 not coded), else 0
  const int32_t* tokens = nullptr; // token-table blob: [tokens] ids, each < the table's vocabulary
  const float* token_kv = nullptr; // token-table blob: the profile's table (profile.h layout)
  uint32_t block = 0;     // tokens * kv_dim: values per (layer, kind)
  uint32_t kv_dim = 0;
  uint32_t head_dim = 0;
  uint32_t n_layers = 0;
  uint32_t dst_row0 = 0;  // destination row of the chunk's first token
  uint32_t level = 0;     // kernels: index of the chunk's HdLevel in the launch's level array
  float* k_scratch = nullptr;     // rope: n_layers * block fp32 pre-RoPE keys (else unused)
  const float* rope_cs = nullptr; // rope: [token][head_dim / 2][cos, sin] for the chunk's positions
  uint32_t* status = nullptr;     // [2]: error bits, decoded escape count
};

struct HdOut {
  void* const* base = nullptr;  // [2 * n_layers]: block b = layer * 2 + kind -> tensor base
  uint32_t dtype = kHdF16;
  uint32_t rope = 0;            // 1: rotate keys (pre-RoPE in the blob, post-RoPE wanted)
};

// Index of value `i` in the escape list, or -1.
KVSTREAM_HD inline int64_t find_escape_hd(const HdChunk& c, uint32_t i) {
  uint32_t lo = 0, hi = c.escapes;
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo) / 2;
    if (c.esc_index[mid] < i) lo = mid + 1;
    else hi = mid;
  }
  return (lo < c.escapes && c.esc_index[lo] == i) ? int64_t(lo) : -1;
}

// Decodes stream `st` of the chunk: every value i = st + k * streams, stored into the destination
// (or, for keys that still need RoPE, into k_scratch).
KVSTREAM_HD inline void decode_stream_hd(const HdChunk& c, const HdLevel& L, const HdOut& o, uint32_t st) {
  if (st >= c.streams) return;
  RansDecoder d{c.final_state[st], c.data + c.offset[st], c.data + c.offset[st + 1], 0};
  const uint32_t S = c.streams, kd = c.kv_dim, block = c.block, sb = L.scale_bits;
  const uint32_t s_mod_d = S % kd;
  uint32_t b = c.first_block + st / block, off = st % block, ch = off % kd;  // block, offset, channel
  uint32_t seen = 0, bad = 0;
  const size_t row_off = size_t(c.dst_row0) * kd;
  for (uint32_t i = st; i < c.values; i += S) {
    const uint32_t lane = b * kd + ch;
    const uint32_t sym = rans_decode_step(d, L.slots + (size_t(lane) << sb), sb);
    const LaneParam lp = L.lanes[lane];
    float v;
    if (sym == lp.escape) {
      ++seen;
      const int64_t k = find_escape_hd(c, i);
      if (k < 0) {
        bad |= kHdBadEscape;
        v = 0.0f;
      } else {
        v = dequant_hd(lp.mean, lp.step, c.esc_q[k]);
      }
    } else {
      v = dequant_hd(lp.mean, lp.step, int64_t(lp.q_min) + int64_t(sym));
    }
    if (o.rope && (b & 1u) == 0)
      c.k_scratch[size_t(b >> 1) * block + off] = v;
    else
      store_hd(o.base[b], row_off + off, o.dtype, v);
    off += S;  // next value of this stream; block is a multiple of kv_dim, so ch just advances
    if (off >= block) b += off / block, off %= block;
    ch += s_mod_d;
    if (ch >= kd) ch -= kd;
  }
  if (!rans_decoder_ok(d)) bad |= kHdBadStream;
  if (seen) hd_status_add(c.status + 1, seen);
  if (bad) hd_status_or(c.status, bad);
}

// Number of layer-0 values fill_token_value_hd() writes per chunk (0 unless a token-table blob).
KVSTREAM_HD inline uint32_t token_values_hd(const HdChunk& c) { return c.first_block ? 2 * c.block : 0; }

// Token-table blob: layer-0 value idx (< token_values_hd) = the table's entry for its token,
// stored (V, or K when keys stay pre-RoPE) or put into k_scratch for finish_key_pair_hd().
KVSTREAM_HD inline void fill_token_value_hd(const HdChunk& c, const HdOut& o, uint32_t idx) {
  if (idx >= token_values_hd(c)) return;
  const uint32_t kind = idx / c.block, off = idx % c.block, t = off / c.kv_dim, ch = off % c.kv_dim;
  const float v = c.token_kv[(size_t(uint32_t(c.tokens[t])) * 2 + kind) * c.kv_dim + ch];
  if (o.rope && kind == 0)
    c.k_scratch[off] = v;
  else
    store_hd(o.base[kind], size_t(c.dst_row0) * c.kv_dim + off, o.dtype, v);
}

// Number of key pairs finish_key_pair_hd() handles per chunk.
KVSTREAM_HD inline uint32_t key_pairs_hd(const HdChunk& c) { return c.n_layers * (c.block / 2); }

// Rotates key pair p (of key_pairs_hd(c)) from k_scratch by its position's cos/sin and stores it.
KVSTREAM_HD inline void finish_key_pair_hd(const HdChunk& c, const HdOut& o, uint32_t p) {
  const uint32_t per_layer = c.block / 2;
  if (p >= c.n_layers * per_layer) return;
  const uint32_t layer = p / per_layer, off = 2 * (p % per_layer);
  const uint32_t t = off / c.kv_dim, j = (off % c.kv_dim) % c.head_dim / 2, half = c.head_dim / 2;
  const float* src = c.k_scratch + size_t(layer) * c.block + off;
  const float* cs = c.rope_cs + (size_t(t) * half + j) * 2;
  float o0, o1;
  rope_pair_hd(src[0], src[1], cs[0], cs[1], o0, o1);
  const size_t idx = size_t(c.dst_row0) * c.kv_dim + off;
  store_hd(o.base[2 * layer], idx, o.dtype, o0);
  store_hd(o.base[2 * layer], idx + 1, o.dtype, o1);
}

}  // namespace kvstream::codec
