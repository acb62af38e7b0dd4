// AVX2 + F16C kernels of the CPU decode engine (decode_engine_simd.h; algorithm in
// decode_engine_kernel.inc): a group's 16 rANS states in two 8-lane registers, four groups
// interleaved (64 states in flight: a round's critical path is the table lookups, a multiply and
// the refill, about 40-50 cycles, so one group alone leaves the core idle most of the time). The
// refill turns the 8-lane "needs a word" mask into one permutation of the next 8 words (a 256-entry
// table).
// Every function is compiled for AVX2 through target attributes (this file itself is built for the
// baseline ISA), and only called after a CPU check (decode_engine.cpp).
#include <immintrin.h>

#include <array>
#include <cstring>

#include "codec/decode_engine_simd.h"

#define KV_TARGET __attribute__((target("avx2,f16c,bmi,bmi2,popcnt")))
#define KV_INLINE KV_TARGET inline __attribute__((always_inline))
#define KV_NAME(x) x##_avx2

namespace kvstream::codec::simd {
namespace {

// kRefill[m][i]: for refill mask m of 8 lanes, the word (of the 8 loaded at p) lane i takes =
// the number of set bits of m below i. Lanes whose bit is clear take an unused word.
constexpr std::array<std::array<uint32_t, 8>, 256> make_refill() {
  std::array<std::array<uint32_t, 8>, 256> t{};
  for (uint32_t m = 0; m < 256; ++m) {
    uint32_t k = 0;
    for (uint32_t i = 0; i < 8; ++i) t[m][i] = (m >> i & 1u) ? k++ : 0u;
  }
  return t;
}
alignas(32) constexpr std::array<std::array<uint32_t, 8>, 256> kRefill = make_refill();

struct Lanes {
  __m256i x0, x1;                     // states of lanes 0-7, 8-15
  __m256i mask, off0, off1;           // slot mask; lane j's table offset j << scale_bits
  __m128i sb;                         // scale_bits as a shift count
  __m256 mean0, mean1, step0, step1;  // this run's lane parameters
  __m256i qmin0, qmin1, esc0, esc1;
};
struct Vals {
  __m256 lo, hi;  // channels 0-7, 8-15
};

KV_INLINE void lanes_load(Lanes& l, const uint32_t* states, uint32_t scale_bits) {
  l.x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(states));
  l.x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(states + 8));
  l.sb = _mm_cvtsi32_si128(int(scale_bits));
  l.mask = _mm256_set1_epi32(int((1u << scale_bits) - 1u));
  l.off0 = _mm256_sll_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), l.sb);
  l.off1 = _mm256_sll_epi32(_mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15), l.sb);
}

KV_INLINE void lanes_params(Lanes& l, const GroupJob& j, uint32_t lane) {
  l.mean0 = _mm256_loadu_ps(j.mean + lane), l.mean1 = _mm256_loadu_ps(j.mean + lane + 8);
  l.step0 = _mm256_loadu_ps(j.step + lane), l.step1 = _mm256_loadu_ps(j.step + lane + 8);
  l.qmin0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(j.q_min + lane));
  l.qmin1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(j.q_min + lane + 8));
  l.esc0 = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(j.escape + lane)));
  l.esc1 = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(j.escape + lane + 8)));
}

KV_INLINE bool lanes_at_l(const Lanes& l) {
  const __m256i L = _mm256_set1_epi32(int(1u << 16));
  const __m256i ok = _mm256_and_si256(_mm256_cmpeq_epi32(l.x0, L), _mm256_cmpeq_epi32(l.x1, L));
  return _mm256_movemask_ps(_mm256_castsi256_ps(ok)) == 0xFF;
}

KV_INLINE Vals load_vals(const float* p) { return Vals{_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }

// One decode step of 8 lanes: the table entry e and x before the refill.
KV_INLINE __m256i decode8(__m256i& x, const int* slots, __m256i lane_off, __m256i mask, __m128i sb) {
  const __m256i idx = _mm256_or_si256(_mm256_and_si256(x, mask), lane_off);
  // The 8 table entries by scalar loads, not vpgatherdd: on Zen 3 the gather bound the kernel (half
  // its samples sat on the instruction after each one) and the loads run 7-8 % faster overall
  // (RESULTS.md, issue 17). The indices leave the register two at a time (vmovq / vpextrq, split
  // in general registers: +2-6 % over one vpextrd each); through memory was 11 % slower.
  const __m128i lo = _mm256_castsi256_si128(idx), hi = _mm256_extracti128_si256(idx, 1);
  const uint64_t a = uint64_t(_mm_cvtsi128_si64(lo)), b = uint64_t(_mm_extract_epi64(lo, 1));
  const uint64_t c = uint64_t(_mm_cvtsi128_si64(hi)), d = uint64_t(_mm_extract_epi64(hi, 1));
  const __m256i e = _mm256_setr_epi32(slots[uint32_t(a)], slots[a >> 32], slots[uint32_t(b)], slots[b >> 32],
                                      slots[uint32_t(c)], slots[c >> 32], slots[uint32_t(d)], slots[d >> 32]);
  const __m256i m12 = _mm256_set1_epi32(0xFFF);
  x = _mm256_add_epi32(_mm256_mullo_epi32(_mm256_and_si256(e, m12), _mm256_srl_epi32(x, sb)),
                       _mm256_and_si256(_mm256_srli_epi32(e, 12), m12));
  return e;
}

// The refill of 8 lanes from the shared stream at p (advanced by the words taken).
KV_INLINE void refill8(__m256i& x, const uint8_t*& p) {
  const __m256i need = _mm256_cmpeq_epi32(_mm256_srli_epi32(x, 16), _mm256_setzero_si256());
  const uint32_t m = uint32_t(_mm256_movemask_ps(_mm256_castsi256_ps(need)));
  const __m256i words = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  const __m256i w = _mm256_permutevar8x32_epi32(words, _mm256_load_si256(reinterpret_cast<const __m256i*>(kRefill[m].data())));
  x = _mm256_blendv_epi8(x, _mm256_or_si256(_mm256_slli_epi32(x, 16), w), need);
  p += 2 * size_t(_mm_popcnt_u32(m));
}

// Dequantization of 8 lanes' entries: mean + step * (q_min + symbol), multiply and add rounded
// separately.
KV_INLINE __m256 dequant8(__m256 mean, __m256 step, __m256i qmin, __m256i e) {
  const __m256i sym = _mm256_srli_epi32(e, 24);
  return _mm256_add_ps(mean, _mm256_mul_ps(step, _mm256_cvtepi32_ps(_mm256_add_epi32(sym, qmin))));
}

// Bit k set when lane k's symbol is its table's escape.
KV_INLINE uint32_t escape_lanes8(__m256i e0, __m256i e1, __m256i esc0, __m256i esc1) {
  const __m256i m0 = _mm256_cmpeq_epi32(_mm256_srli_epi32(e0, 24), esc0);
  const __m256i m1 = _mm256_cmpeq_epi32(_mm256_srli_epi32(e1, 24), esc1);
  return uint32_t(_mm256_movemask_ps(_mm256_castsi256_ps(m0))) | uint32_t(_mm256_movemask_ps(_mm256_castsi256_ps(m1))) << 8;
}

// RoPE of 8 key channels whose 4 pairs' (cos, sin) are cs[0..7]: even lanes v0*c - v1*s, odd lanes
// v1*c - v0*(-s) = v1*c + v0*s, i.e. rope_pair_hd's o0 and o1 exactly.
KV_INLINE __m256 rope8(__m256 v, const float* cs) {
  const __m256 pair = _mm256_loadu_ps(cs);
  const __m256 c = _mm256_moveldup_ps(pair), s = _mm256_movehdup_ps(pair);
  const __m256 s_signed = _mm256_xor_ps(s, _mm256_castsi256_ps(_mm256_setr_epi32(0, int(0x80000000), 0, int(0x80000000), 0,
                                                                               int(0x80000000), 0, int(0x80000000))));
  const __m256 swapped = _mm256_permute_ps(v, 0xB1);
  return _mm256_sub_ps(_mm256_mul_ps(v, c), _mm256_mul_ps(swapped, s_signed));
}
KV_INLINE Vals rope_vals(Vals v, const float* cs0, const float* cs1) { return Vals{rope8(v.lo, cs0), rope8(v.hi, cs1)}; }

// ---- conversions (half.h's round-to-nearest-even, bit for bit) ----
KV_INLINE __m128i bf16_of(__m256 v) {
  const __m256i u = _mm256_castps_si256(v);
  const __m256i abs = _mm256_and_si256(u, _mm256_set1_epi32(0x7FFFFFFF));
  const __m256i nan = _mm256_cmpgt_epi32(abs, _mm256_set1_epi32(0x7F800000));  // abs < 2^31: signed ok
  const __m256i rne = _mm256_srli_epi32(
      _mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7FFF)), _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1))), 16);
  const __m256i qnan = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
  const __m256i r = _mm256_blendv_epi8(rne, qnan, nan);
  const __m256i packed = _mm256_packus_epi32(r, r);  // per 128-bit half: 4 results twice
  return _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08));
}

template <uint32_t DT>
KV_INLINE void store8(uint8_t* dst, __m256 v) {
  if constexpr (DT == kF32) {
    _mm256_storeu_ps(reinterpret_cast<float*>(dst), v);
  } else if constexpr (DT == kF16) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  } else {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), bf16_of(v));
  }
}
template <uint32_t DT>
KV_INLINE void store_vals(uint8_t* d0, uint8_t* d1, Vals v) {
  store8<DT>(d0, v.lo);
  store8<DT>(d1, v.hi);
}

struct Entries {
  __m256i e0, e1;  // lanes 0-7, 8-15
};
struct Group;
KV_INLINE Entries decode_entries(Group& g);
KV_INLINE void refill(Group& g);
KV_INLINE Vals round_values(Group& g, Entries e);

#include "codec/decode_engine_kernel.inc"

// Escape lanes of a round: their values from the escape list, blended into the registers (an
// array round trip would stall on forwarding 4-byte stores to a 32-byte load: at the max level
// about half the rounds have an escape).
KV_INLINE void fix_escapes(Group& g, uint32_t lanes, Vals& v) {
  const __m256i lane_ids = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (; lanes; lanes &= lanes - 1) {  // set lanes in increasing order, as the escape list runs
    const uint32_t k = uint32_t(__builtin_ctz(lanes));
    const __m256 x = _mm256_set1_ps(fix_escape_lane(g, k));
    const __m256 at = _mm256_castsi256_ps(_mm256_cmpeq_epi32(lane_ids, _mm256_set1_epi32(int(k & 7u))));
    if (k < 8) v.lo = _mm256_blendv_ps(v.lo, x, at);
    else v.hi = _mm256_blendv_ps(v.hi, x, at);
  }
}

KV_INLINE Entries decode_entries(Group& g) {
  Lanes& l = g.l;
  return Entries{decode8(l.x0, g.slots, l.off0, l.mask, l.sb), decode8(l.x1, g.slots, l.off1, l.mask, l.sb)};
}

KV_INLINE void refill(Group& g) {
  refill8(g.l.x0, g.p);
  refill8(g.l.x1, g.p);
}

KV_INLINE Vals round_values(Group& g, Entries e) {
  const Lanes& l = g.l;
  Vals v{dequant8(l.mean0, l.step0, l.qmin0, e.e0), dequant8(l.mean1, l.step1, l.qmin1, e.e1)};
  if (const uint32_t esc = escape_lanes8(e.e0, e.e1, l.esc0, l.esc1); __builtin_expect(esc != 0, 0)) fix_escapes(g, esc, v);
  return v;
}

}  // namespace
}  // namespace kvstream::codec::simd
