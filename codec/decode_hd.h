// decode_hd.h: the per-lane arithmetic of blob format 3's Quant decode, written once as
// KVSTREAM_HD inline functions that the CUDA kernels (one warp lane per rANS state), the CPU
// decoder's portable scalar path and the host emulation of the kernels (decode_prep.h) all run.
// The CPU decoder's SIMD paths (decode_engine_avx2/avx512.cpp) compute the same expressions with
// intrinsics and are tested bit for bit against decode_group_hd().
//
// Bit-exactness contract (all paths, and the legacy format-2 decoder, chunk_v2.h):
// - dequant_hd(mean, step, q) = mean + step * float(q), the expression build_decode_tables() and
//   the escape path use, with the multiply and the add rounded separately (no fused multiply-add:
//   on the device __fmul_rn/__fadd_rn, which nvcc never contracts; on the host plain operators
//   and SIMD mul/add intrinsics, compiled with -ffp-contract=off).
// - rope_pair_hd() is rope_rotate_rows()'s pair rotation with the same operation order, using
//   cos/sin values computed on the HOST by rope_cs_rows() (decode_prep.h) with rope.cpp's exact
//   expressions; the device never evaluates a transcendental function.
// - f32_to_f16_hd()/f32_to_bf16_hd() are half.h's round-to-nearest-even conversions, bit for bit.
//
// Decode of one interleaved group (FORMAT.md section 2, blob version 3): kRansLanes states, one
// word stream; round r decodes coded values 16r .. 16r+15, lane j the value 16r + j. Per round:
//   1. every active lane: e = rans_lane_decode(x, slots of its value's lane table)
//   2. the lanes with rans_lane_needs_word(x), in increasing lane order, take the next words
//      (the host loops; a warp uses ballot + popc for each lane's word offset)
//   3. every lane: its value (dequant_hd of q_min + symbol, or of the escape list's q), then, for
//      keys that are wanted rotated, the pair rotation with its neighbour lane j ^ 1 (pairs
//      (2i, 2i+1) of a head always sit in lanes (2m, 2m+1) of one round), then store_hd.
// Errors are reported, never trapped: a group that does not end cleanly (states back at L, every
// word consumed, none read past the end), or an escape symbol whose index is not in the escape
// list, sets bits in status[0]; status[1] counts decoded escape symbols (the caller compares it
// with the list length). Writes stay inside the destination rows of the chunk whatever the bytes.
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

// Stores v as `dtype` at byte address p.
KVSTREAM_HD_HOT void store_hd(uint8_t* p, uint32_t dtype, float v) {
  if (dtype == kHdF32) {
    const uint32_t u = hd_float_bits(v);
    std::memcpy(p, &u, 4);
  } else {
    const uint16_t h = dtype == kHdF16 ? f32_to_f16_hd(v) : f32_to_bf16_hd(v);
    std::memcpy(p, &h, 2);
  }
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
struct HdLevel {   // one profile level: LevelDecodeTables' arrays
  const uint32_t* slots = nullptr;   // [lane << scale_bits | slot], rans.h layout
  const float* mean = nullptr;       // [lane]
  const float* step = nullptr;       // [lane]
  const int32_t* q_min = nullptr;    // [lane] quantized value of table symbol 0
  const uint16_t* escape = nullptr;  // [lane] escape symbol (table size - 1)
  uint32_t scale_bits = 12;
};

struct HdChunk {
  const uint8_t* data = nullptr;          // the blob bytes
  const uint32_t* group_offset = nullptr; // [groups + 1] byte offsets of each group's words in data
  const uint32_t* final_state = nullptr;  // [groups * kRansLanes]
  const uint32_t* esc_index = nullptr;    // [escapes] strictly increasing coded-value indices (< values)
  const int32_t* esc_q = nullptr;         // [escapes] quantized values
  uint32_t escapes = 0;
  uint32_t groups = 0;
  uint32_t rounds_per_group = 0;  // every group but the last has exactly this many rounds
  uint32_t values = 0;            // coded values (the last round may be partial)
  uint32_t first_block = 0;       // 2 for a token-table blob (layer 0 not coded), else 0
  const int32_t* tokens = nullptr;  // token-table blob: [tokens] ids, each < the table's vocabulary
  const float* token_kv = nullptr;  // token-table blob: the profile's table (profile.h layout)
  uint32_t n_tokens = 0;
  uint32_t kv_dim = 0;
  uint32_t head_dim = 0;
  uint32_t head_log2 = 32;          // log2(head_dim) when a power of two (every real model), else 32
  uint32_t n_layers = 0;
  uint32_t level = 0;               // kernels: index of the chunk's HdLevel in the launch's level array
  const int64_t* row_offset = nullptr;  // [n_tokens] byte offset of each token's row (-1: not stored)
  const float* rope_cs = nullptr;   // rope: [token][head_dim / 2][cos, sin] for the chunk's positions
  uint32_t* status = nullptr;       // [2]: error bits, decoded escape count
  uint8_t* symbols = nullptr;       // host only, optional: symbol of every coded value (statistics)
};

struct HdOut {
  void* const* base = nullptr;  // [2 * n_layers]: block b = layer * 2 + kind -> tensor base
  uint32_t dtype = kHdF16;
  uint32_t rope = 0;            // 1: rotate keys (pre-RoPE in the blob, post-RoPE wanted)
  uint64_t head_stride = 0;     // bytes between heads of a row (elements of a head are contiguous)
};

// Where coded value i of a chunk goes: block b (= layer * 2 + kind), token t, channel ch. Format 3
// order: per coded block, channel groups of kRansLanes channels (the last one narrower when kv_dim
// is not a multiple), each walked token by token.
struct HdPos {
  uint32_t b, t, ch;
};
KVSTREAM_HD inline HdPos hd_value_pos(const HdChunk& c, uint32_t i) {
  const uint32_t per_block = c.n_tokens * c.kv_dim, o = i % per_block;
  const uint32_t full = c.kv_dim / kRansLanes, run = c.n_tokens * kRansLanes;
  HdPos p;
  p.b = c.first_block + i / per_block;
  if (o < full * run) {
    p.t = (o % run) / kRansLanes;
    p.ch = (o / run) * kRansLanes + o % kRansLanes;
  } else {
    const uint32_t rem = c.kv_dim - full * kRansLanes, o2 = o - full * run;
    p.t = o2 / rem;
    p.ch = full * kRansLanes + o2 % rem;
  }
  return p;
}

// When kv_dim is a multiple of kRansLanes every round is one (block, channel group, token) and lane
// j holds channel c0 + j: the position of round r's lane 0, and the next round's.
KVSTREAM_HD inline bool hd_aligned(const HdChunk& c) { return c.kv_dim % kRansLanes == 0; }
KVSTREAM_HD inline HdPos hd_round_pos(const HdChunk& c, uint32_t r) {
  const uint32_t per_block = c.n_tokens * (c.kv_dim / kRansLanes), o = r % per_block;
  return HdPos{c.first_block + r / per_block, o % c.n_tokens, (o / c.n_tokens) * kRansLanes};
}
KVSTREAM_HD inline void hd_next_round(const HdChunk& c, HdPos& p) {
  if (++p.t < c.n_tokens) return;
  p.t = 0;
  p.ch += kRansLanes;
  if (p.ch < c.kv_dim) return;
  p.ch = 0;
  ++p.b;
}

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

// Rounds [first, end) of group g.
KVSTREAM_HD inline uint32_t hd_group_first_round(const HdChunk& c, uint32_t g) { return g * c.rounds_per_group; }
KVSTREAM_HD inline uint32_t hd_group_end_round(const HdChunk& c, uint32_t g) {
  const uint32_t rounds = (c.values + kRansLanes - 1) / kRansLanes, e = (g + 1) * c.rounds_per_group;
  return e < rounds ? e : rounds;
}

// Step 2's word for a lane: the word `k` words after p (k = lanes before it that read this round),
// or 0 with *overrun set when that is at or past the group's end.
KVSTREAM_HD inline uint32_t hd_group_word(const uint8_t* p, const uint8_t* end, uint32_t k, uint32_t* overrun) {
  const uint8_t* q = p + 2 * size_t(k);
  if (q < end) return uint32_t(q[0]) | (uint32_t(q[1]) << 8);
  *overrun = 1;
  return 0;
}

// Step 3, value: coded value i of lane table `lane`, decoded table entry e. Escapes come from the
// list (*seen counts them, *bad gets kHdBadEscape when i is not listed).
KVSTREAM_HD_HOT float hd_lane_value(const HdChunk& c, const HdLevel& L, uint32_t lane, uint32_t e, uint32_t i,
                                       uint32_t* seen, uint32_t* bad) {
  const uint32_t sym = e >> 24;
  if (c.symbols) c.symbols[i] = uint8_t(sym);
  if (sym != L.escape[lane]) return dequant_hd(L.mean[lane], L.step[lane], int64_t(L.q_min[lane]) + int64_t(sym));
  ++*seen;
  const int64_t k = find_escape_hd(c, i);
  if (k < 0) {
    *bad |= kHdBadEscape;
    return 0.0f;
  }
  return dequant_hd(L.mean[lane], L.step[lane], c.esc_q[k]);
}

// Channel ch's head and its index within the head (shifts for power-of-two head dims).
KVSTREAM_HD inline uint32_t hd_head_of(const HdChunk& c, uint32_t ch) {
  return c.head_log2 < 32 ? ch >> c.head_log2 : ch / c.head_dim;
}
KVSTREAM_HD inline uint32_t hd_in_head(const HdChunk& c, uint32_t ch) {
  return c.head_log2 < 32 ? ch & (c.head_dim - 1u) : ch % c.head_dim;
}

// Step 3, store: value v of (b, t, ch), `partner` the value of channel ch ^ 1 of the same token
// (used only for rotated keys).
KVSTREAM_HD_HOT void hd_store_value(const HdChunk& c, const HdOut& o, HdPos p, float v, float partner) {
  const int64_t row = c.row_offset[p.t];
  if (row < 0) return;
  const uint32_t d = hd_in_head(c, p.ch);
  if (o.rope && (p.b & 1u) == 0) {
    const float* cs = c.rope_cs + size_t(p.t) * c.head_dim + (d & ~1u);  // pair d / 2: (cos, sin)
    float o0, o1;
    if (p.ch & 1u) rope_pair_hd(partner, v, cs[0], cs[1], o0, o1), v = o1;
    else rope_pair_hd(v, partner, cs[0], cs[1], o0, o1), v = o0;
  }
  const size_t es = o.dtype == kHdF32 ? 4 : 2;
  uint8_t* dst = static_cast<uint8_t*>(o.base[p.b]) + row + hd_head_of(c, p.ch) * o.head_stride + d * es;
  store_hd(dst, o.dtype, v);
}

// Decodes group g of the chunk on the host (the kernel does the same with one lane per thread).
inline void decode_group_hd(const HdChunk& c, const HdLevel& L, const HdOut& o, uint32_t g) {
  if (g >= c.groups) return;
  uint32_t x[kRansLanes], e[kRansLanes];
  float v[kRansLanes];
  HdPos pos[kRansLanes];
  for (uint32_t j = 0; j < kRansLanes; ++j) x[j] = c.final_state[size_t(g) * kRansLanes + j];
  const uint8_t* p = c.data + c.group_offset[g];
  const uint8_t* const end = c.data + c.group_offset[g + 1];
  uint32_t overrun = 0, seen = 0, bad = 0;
  const uint32_t sb = L.scale_bits, r0 = hd_group_first_round(c, g);
  HdPos rp = hd_aligned(c) ? hd_round_pos(c, r0) : HdPos{0, 0, 0};  // aligned: lane 0's position, advanced per round
  for (uint32_t r = r0; r < hd_group_end_round(c, g); ++r, hd_aligned(c) ? hd_next_round(c, rp) : void()) {
    const uint32_t i0 = r * kRansLanes, n = c.values - i0 < kRansLanes ? c.values - i0 : kRansLanes;
    for (uint32_t j = 0; j < n; ++j) {  // step 1
      pos[j] = hd_aligned(c) ? HdPos{rp.b, rp.t, rp.ch + j} : hd_value_pos(c, i0 + j);
      const uint32_t lane = pos[j].b * c.kv_dim + pos[j].ch;
      e[j] = rans_lane_decode(x[j], L.slots + (size_t(lane) << sb), sb);
    }
    uint32_t k = 0;
    for (uint32_t j = 0; j < n; ++j)  // step 2
      if (rans_lane_needs_word(x[j])) x[j] = rans_lane_refill(x[j], hd_group_word(p, end, k++, &overrun));
    p += 2 * size_t(k);
    if (p > end) p = end;
    for (uint32_t j = 0; j < n; ++j)  // step 3
      v[j] = hd_lane_value(c, L, pos[j].b * c.kv_dim + pos[j].ch, e[j], i0 + j, &seen, &bad);
    for (uint32_t j = 0; j < n; ++j) hd_store_value(c, o, pos[j], v[j], v[(j ^ 1u) < n ? j ^ 1u : j]);
  }
  for (uint32_t j = 0; j < kRansLanes; ++j) bad |= x[j] != kRansL ? kHdBadStream : 0u;
  if (p != end || overrun) bad |= kHdBadStream;
  if (seen) hd_status_add(c.status + 1, seen);
  if (bad) hd_status_or(c.status, bad);
}

// Number of layer-0 value pairs fill_token_pair_hd() writes per chunk (0 unless a token-table blob).
KVSTREAM_HD inline uint32_t token_pairs_hd(const HdChunk& c) { return c.first_block ? c.n_tokens * c.kv_dim : 0; }

// Token-table blob: layer-0 pair idx (< token_pairs_hd: kind, token, channel pair) = the table's
// entries for its token, keys rotated when wanted, stored.
KVSTREAM_HD inline void fill_token_pair_hd(const HdChunk& c, const HdOut& o, uint32_t idx) {
  if (idx >= token_pairs_hd(c)) return;
  const uint32_t half = c.kv_dim / 2, kind = idx / (c.n_tokens * half), rest = idx % (c.n_tokens * half);
  HdPos p{kind, rest / half, 2 * (rest % half)};
  const float* row = c.token_kv + (size_t(uint32_t(c.tokens[p.t])) * 2 + kind) * c.kv_dim;
  const float a = row[p.ch], b = row[p.ch + 1];
  hd_store_value(c, o, p, a, b);
  hd_store_value(c, o, HdPos{p.b, p.t, p.ch + 1}, b, a);
}

}  // namespace kvstream::codec
