// AVX-512F kernels of the CPU decode engine (decode_engine_simd.h; algorithm in
// decode_engine_kernel.inc): a group's 16 states in one 16-lane register, four groups side by side;
// the refill is a mask compare and an expand of the next words into the lanes that need one.
// Bit-identical to the AVX2 and scalar paths by construction (the same separately rounded
// operations), and tested so. Every function is compiled for AVX-512F through target attributes,
// and only called after a CPU check (decode_engine.cpp).
#include <immintrin.h>

// GCC 12 reports its own AVX-512 intrinsics' _mm512_undefined_*() placeholders as maybe
// uninitialized when they are inlined into target-attribute functions (a known false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <cstring>

#include "codec/decode_engine_simd.h"

#define KV_TARGET __attribute__((target("avx512f,avx2,f16c,bmi,bmi2,popcnt")))
#define KV_INLINE KV_TARGET inline __attribute__((always_inline))
#define KV_NAME(x) x##_avx512

namespace kvstream::codec::simd {
namespace {

struct Lanes {
  __m512i x;               // the 16 states
  __m512i mask, off;       // slot mask; lane j's table offset j << scale_bits
  __m128i sb;              // scale_bits as a shift count
  __m512 mean, step;       // this run's lane parameters
  __m512i qmin, esc;
};
struct Vals {
  __m512 v;
};

KV_INLINE void lanes_load(Lanes& l, const uint32_t* states, uint32_t scale_bits) {
  l.x = _mm512_loadu_si512(states);
  l.sb = _mm_cvtsi32_si128(int(scale_bits));
  l.mask = _mm512_set1_epi32(int((1u << scale_bits) - 1u));
  l.off = _mm512_sll_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), l.sb);
}

KV_INLINE void lanes_params(Lanes& l, const GroupJob& j, uint32_t lane) {
  l.mean = _mm512_loadu_ps(j.mean + lane);
  l.step = _mm512_loadu_ps(j.step + lane);
  l.qmin = _mm512_loadu_si512(j.q_min + lane);
  l.esc = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(j.escape + lane)));
}

KV_INLINE bool lanes_at_l(const Lanes& l) { return _mm512_cmpneq_epi32_mask(l.x, _mm512_set1_epi32(int(kL))) == 0; }

KV_INLINE Vals load_vals(const float* p) { return Vals{_mm512_loadu_ps(p)}; }

// Decode step of the 16 lanes: the lane tables' entries; x = f * (x >> M) + bias (before the refill).
KV_INLINE __m512i decode16(Lanes& l, const int* slots, __m512i& x) {
  const __m512i idx = _mm512_ternarylogic_epi32(l.x, l.mask, l.off, 0xEA);  // (x & mask) | off
  const __m512i e = _mm512_i32gather_epi32(idx, slots, 4);
  const __m512i m12 = _mm512_set1_epi32(0xFFF);
  x = _mm512_add_epi32(_mm512_mullo_epi32(_mm512_and_si512(e, m12), _mm512_srl_epi32(l.x, l.sb)),
                       _mm512_and_si512(_mm512_srli_epi32(e, 12), m12));
  return e;
}

// Refill: the lanes below L take the next words of the shared stream in lane order.
KV_INLINE void refill16(Lanes& l, __m512i x, const uint8_t*& p) {
  const __mmask16 need = _mm512_cmplt_epu32_mask(x, _mm512_set1_epi32(int(kL)));
  const __m512i words = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  l.x = _mm512_mask_or_epi32(x, need, _mm512_slli_epi32(x, 16), _mm512_maskz_expand_epi32(need, words));
  p += 2 * size_t(_mm_popcnt_u32(need));
}

// Dequantization of the entries' symbols: mean + step * (q_min + symbol), multiply and add rounded
// separately.
KV_INLINE __m512 dequant16(const Lanes& l, __m512i e) {
  const __m512i sym = _mm512_srli_epi32(e, 24);
  return _mm512_add_ps(l.mean, _mm512_mul_ps(l.step, _mm512_cvtepi32_ps(_mm512_add_epi32(sym, l.qmin))));
}

// The lanes whose symbol is their table's escape.
KV_INLINE __mmask16 escape_lanes16(const Lanes& l, __m512i e) { return _mm512_cmpeq_epi32_mask(_mm512_srli_epi32(e, 24), l.esc); }

// RoPE of 16 key channels whose halves' 4 pairs of (cos, sin) are at cs0 and cs1: even lanes
// v0*c - v1*s, odd lanes v1*c - v0*(-s) = v1*c + v0*s, i.e. rope_pair_hd's o0 and o1 exactly.
KV_INLINE Vals rope_vals(Vals v, const float* cs0, const float* cs1) {
  const __m512 pair = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(_mm256_loadu_ps(cs0))),
                                                          _mm256_castps_pd(_mm256_loadu_ps(cs1)), 1));
  const __m512 c = _mm512_moveldup_ps(pair), s = _mm512_movehdup_ps(pair);
  const __m512 s_signed = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(s), _mm512_set1_epi64(int64_t(0x8000000000000000ull))));
  const __m512 swapped = _mm512_permute_ps(v.v, 0xB1);
  return Vals{_mm512_sub_ps(_mm512_mul_ps(v.v, c), _mm512_mul_ps(swapped, s_signed))};
}

// ---- conversions (half.h's round-to-nearest-even, bit for bit) ----
KV_INLINE __m256i bf16_of16(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF)), _mm512_set1_epi32(0x7F800000));
  const __m512i rne = _mm512_srli_epi32(
      _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1))), 16);
  const __m512i r = _mm512_mask_or_epi32(rne, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
  return _mm512_cvtepi32_epi16(r);
}

// 16 values to `dtype` elements at two addresses (8 channels each; one store when contiguous).
template <uint32_t DT>
KV_INLINE void store_vals(uint8_t* d0, uint8_t* d1, Vals x) {
  const __m512 v = x.v;
  constexpr size_t es = DT == kF32 ? 4 : 2;
  if constexpr (DT == kF32) {
    if (d1 == d0 + 8 * es) return _mm512_storeu_ps(reinterpret_cast<float*>(d0), v);
    _mm256_storeu_ps(reinterpret_cast<float*>(d0), _mm512_castps512_ps256(v));
    _mm256_storeu_ps(reinterpret_cast<float*>(d1), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  } else {
    const __m256i h = DT == kF16 ? _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC) : bf16_of16(v);
    if (d1 == d0 + 8 * es) return _mm256_storeu_si256(reinterpret_cast<__m256i*>(d0), h);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d0), _mm256_castsi256_si128(h));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d1), _mm256_extracti128_si256(h, 1));
  }
}

struct Entries {
  __m512i e;
};
struct Group;
KV_INLINE Entries decode_entries(Group& g);
KV_INLINE void refill(Group& g);
KV_INLINE Vals round_values(Group& g, Entries e);

#include "codec/decode_engine_kernel.inc"

// Escape lanes of a round: their values from the escape list, merged into the register (an array
// round trip would stall on forwarding 4-byte stores to a 64-byte load).
KV_INLINE void fix_escapes(Group& g, __mmask16 lanes, Vals& v) {
  for (uint32_t m = lanes; m; m &= m - 1) {  // set lanes in increasing order, as the escape list runs
    const uint32_t k = uint32_t(__builtin_ctz(m));
    v.v = _mm512_mask_mov_ps(v.v, __mmask16(1u << k), _mm512_set1_ps(fix_escape_lane(g, k)));
  }
}

KV_INLINE Entries decode_entries(Group& g) {
  __m512i x;
  const __m512i e = decode16(g.l, g.slots, x);
  g.l.x = x;  // before its refill
  return Entries{e};
}

KV_INLINE void refill(Group& g) { refill16(g.l, g.l.x, g.p); }

KV_INLINE Vals round_values(Group& g, Entries e) {
  Vals v{dequant16(g.l, e.e)};
  if (const __mmask16 esc = escape_lanes16(g.l, e.e); __builtin_expect(esc != 0, 0)) fix_escapes(g, esc, v);
  return v;
}

}  // namespace
}  // namespace kvstream::codec::simd
