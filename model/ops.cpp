#include "model/ops.h"

#include <cmath>
#include <cstdint>
#include <cstring>

// AVX2 and baseline clones of the hot kernels, chosen at load time. ThreadSanitizer cannot run the
// ifunc resolvers (they run before its runtime starts), so TSan builds use the baseline only; so
// do clang builds (the fuzzing build: clang refuses the AVX clone's calls to the v8 helpers).
#if defined(__SANITIZE_THREAD__) || defined(__clang__)
#define KVSTREAM_AVX2_CLONES
#else
#define KVSTREAM_AVX2_CLONES __attribute__((target_clones("avx2", "default")))
#endif

// v8 helpers are internal and always inlined, so the AVX-vs-SSE ABI note does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace kvstream::model::ops {

namespace {

typedef float v8 __attribute__((vector_size(32)));  // 8 floats; SSE pairs or one AVX register

inline v8 load8(const float* p) {
  v8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void store8(float* p, v8 v) { std::memcpy(p, &v, sizeof(v)); }

// TB tokens x (16*NV) outputs per block; accumulators start at 0 and add in input order.
template <int TB>
inline __attribute__((always_inline)) void block(const float* X, size_t ldx, int in, const float* Wt,
                                                 int out, float* Y, size_t ldy) {
  int o = 0;
  for (; o + 16 <= out; o += 16) {
    v8 acc[TB][2] = {};
    const float* w = Wt + o;
    for (int i = 0; i < in; ++i, w += out) {
      const v8 w0 = load8(w), w1 = load8(w + 8);
      for (int t = 0; t < TB; ++t) {
        const float a = X[t * ldx + i];
        acc[t][0] += a * w0;
        acc[t][1] += a * w1;
      }
    }
    for (int t = 0; t < TB; ++t) {
      store8(Y + t * ldy + o, acc[t][0]);
      store8(Y + t * ldy + o + 8, acc[t][1]);
    }
  }
  for (; o + 8 <= out; o += 8) {
    v8 acc[TB] = {};
    const float* w = Wt + o;
    for (int i = 0; i < in; ++i, w += out) {
      const v8 w0 = load8(w);
      for (int t = 0; t < TB; ++t) acc[t] += X[t * ldx + i] * w0;
    }
    for (int t = 0; t < TB; ++t) store8(Y + t * ldy + o, acc[t]);
  }
  for (; o < out; ++o)
    for (int t = 0; t < TB; ++t) {
      float s = 0.0f;
      for (int i = 0; i < in; ++i) s += X[t * ldx + i] * Wt[size_t(i) * out + o];
      Y[t * ldy + o] = s;
    }
}

typedef int32_t v8i __attribute__((vector_size(32)));

// Vectorised expf (Cephes polynomial, ~1 ulp; inputs clamped to [-87.3, 88.3]).
inline __attribute__((always_inline)) v8 exp8(const v8& in) {
  v8 x = in;
  const v8 hi = v8{} + 88.3762626647949f, lo = v8{} - 87.3365447505531f;
  x = x > hi ? hi : x;
  x = x < lo ? lo : x;
  const v8 fx = x * 1.44269504088896341f + 0.5f;
  v8i n = __builtin_convertvector(fx, v8i);           // truncates toward zero
  n += __builtin_convertvector(n, v8) > fx;  // mask is -1 where truncation rounded up: floor
  const v8 nf = __builtin_convertvector(n, v8);
  const v8 r = x - nf * 0.693359375f + nf * 2.12194440e-4f;
  v8 p = v8{} + 1.9875691500E-4f;
  p = p * r + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  p = p * (r * r) + r + 1.0f;
  v8i bits = (n + 127) << 23;
  v8 scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

inline float hsum8(v8 v) {
  return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
}

// In-place softmax over x[0..len) using exp8 (x is padded by the caller to a multiple of 8).
inline __attribute__((always_inline)) void softmax8(float* x, size_t len) {
  const size_t full = len & ~size_t(7);
  v8 m = v8{} + x[0];
  for (size_t u = 0; u < full; u += 8) {
    const v8 v = load8(x + u);
    m = v > m ? v : m;
  }
  float mx = m[0];
  for (int i = 1; i < 8; ++i) mx = m[i] > mx ? m[i] : mx;
  for (size_t u = full; u < len; ++u) mx = x[u] > mx ? x[u] : mx;
  v8 sum{};
  size_t u = 0;
  for (; u < full; u += 8) {
    const v8 e = exp8(load8(x + u) - mx);
    store8(x + u, e);
    sum += e;
  }
  if (u < len) {
    v8 t{};
    for (size_t i = 0; i < len - u; ++i) t[i] = x[u + i] - mx;
    v8 e = exp8(t);
    for (size_t i = len - u; i < 8; ++i) e[i] = 0.0f;
    for (size_t i = 0; i < len - u; ++i) x[u + i] = e[i];
    sum += e;
  }
  const float inv = 1.0f / hsum8(sum);
  for (u = 0; u < full; u += 8) store8(x + u, load8(x + u) * inv);
  for (; u < len; ++u) x[u] *= inv;
}

}  // namespace

KVSTREAM_AVX2_CLONES void attend(
    const float* q, int nq, int hs, const float* kt, size_t ld, size_t len, float scale,
    const float* vp, size_t P, const float* vn, size_t vstride, float* scratch, size_t sld, float* out) {
  for (int r = 0; r < nq; ++r) {
    float* s = scratch + size_t(r) * sld;
    const float* qh = q + r * hs;
    for (size_t u = 0; u < len; u += 8) {  // kt and s are padded to a multiple of 8 positions
      v8 acc = qh[0] * load8(kt + u);
      for (int i = 1; i < hs; ++i) acc += qh[i] * load8(kt + size_t(i) * ld + u);
      store8(s + u, acc / scale);
    }
    softmax8(s, len);
  }
  const size_t pe = P < len ? P : len;
  if (hs == 8 && nq == 2) {  // the stories260K shape: 2 query heads per KV head, head_dim 8
    v8 o0{}, o1{};
    const float *a0 = scratch, *a1 = scratch + sld;
    for (size_t u = 0; u < pe; ++u) {
      const v8 v = load8(vp + u * vstride);
      o0 += a0[u] * v;
      o1 += a1[u] * v;
    }
    for (size_t u = pe; u < len; ++u) {
      const v8 v = load8(vn + (u - P) * vstride);
      o0 += a0[u] * v;
      o1 += a1[u] * v;
    }
    store8(out, o0);
    store8(out + 8, o1);
    return;
  }
  for (int r = 0; r < nq; ++r) {
    const float* a = scratch + size_t(r) * sld;
    float* o = out + r * hs;
    for (int i = 0; i < hs; ++i) o[i] = 0.0f;
    for (size_t u = 0; u < pe; ++u)
      for (int i = 0; i < hs; ++i) o[i] += a[u] * vp[u * vstride + i];
    for (size_t u = pe; u < len; ++u)
      for (int i = 0; i < hs; ++i) o[i] += a[u] * vn[(u - P) * vstride + i];
  }
}

// Lane selectors of the 8x8 transpose: interleave 32-bit, then 64-bit, then 128-bit halves of two
// rows. __builtin_shufflevector takes constant indices (GCC >= 12 and clang both have it).
#define SHUF(a, b, sel) __builtin_shufflevector(a, b, sel)
#define KV_LO32 0, 8, 1, 9, 4, 12, 5, 13
#define KV_HI32 2, 10, 3, 11, 6, 14, 7, 15
#define KV_LO64 0, 1, 8, 9, 4, 5, 12, 13
#define KV_HI64 2, 3, 10, 11, 6, 7, 14, 15
#define KV_LO128 0, 1, 2, 3, 8, 9, 10, 11
#define KV_HI128 4, 5, 6, 7, 12, 13, 14, 15

KVSTREAM_AVX2_CLONES void transpose_rows(
    const float* rows, size_t n, int width, float* out, size_t ld, size_t t0) {
  size_t t = 0;
  if (width % 8 == 0) {
    for (; t + 8 <= n; t += 8) {
      const float* r = rows + t * width;
      for (int j = 0; j < width; j += 8) {
        v8 r0 = load8(r + j), r1 = load8(r + width + j), r2 = load8(r + 2 * width + j),
           r3 = load8(r + 3 * width + j), r4 = load8(r + 4 * width + j), r5 = load8(r + 5 * width + j),
           r6 = load8(r + 6 * width + j), r7 = load8(r + 7 * width + j);
        const v8 t0v = SHUF(r0, r1, KV_LO32), t1v = SHUF(r0, r1, KV_HI32),
                 t2v = SHUF(r2, r3, KV_LO32), t3v = SHUF(r2, r3, KV_HI32),
                 t4v = SHUF(r4, r5, KV_LO32), t5v = SHUF(r4, r5, KV_HI32),
                 t6v = SHUF(r6, r7, KV_LO32), t7v = SHUF(r6, r7, KV_HI32);
        const v8 s0 = SHUF(t0v, t2v, KV_LO64), s1 = SHUF(t0v, t2v, KV_HI64),
                 s2 = SHUF(t1v, t3v, KV_LO64), s3 = SHUF(t1v, t3v, KV_HI64),
                 s4 = SHUF(t4v, t6v, KV_LO64), s5 = SHUF(t4v, t6v, KV_HI64),
                 s6 = SHUF(t5v, t7v, KV_LO64), s7 = SHUF(t5v, t7v, KV_HI64);
        float* o = out + size_t(j) * ld + t0 + t;
        store8(o, SHUF(s0, s4, KV_LO128));
        store8(o + ld, SHUF(s1, s5, KV_LO128));
        store8(o + 2 * ld, SHUF(s2, s6, KV_LO128));
        store8(o + 3 * ld, SHUF(s3, s7, KV_LO128));
        store8(o + 4 * ld, SHUF(s0, s4, KV_HI128));
        store8(o + 5 * ld, SHUF(s1, s5, KV_HI128));
        store8(o + 6 * ld, SHUF(s2, s6, KV_HI128));
        store8(o + 7 * ld, SHUF(s3, s7, KV_HI128));
      }
    }
  }
  for (; t < n; ++t)
    for (int j = 0; j < width; ++j) out[size_t(j) * ld + t0 + t] = rows[t * width + j];
}

KVSTREAM_AVX2_CLONES void swiglu(float* h1, const float* h3, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const v8 x = load8(h1 + i);
    store8(h1 + i, x * (1.0f / (1.0f + exp8(-x))) * load8(h3 + i));
  }
  for (; i < n; ++i) {
    float val = h1[i];
    val *= (1.0f / (1.0f + expf(-val)));
    h1[i] = val * h3[i];
  }
}

// No FMA contraction happens (ISO C++ mode implies -ffp-contract=off), so the AVX2 clone computes
// exactly what the baseline one does.
KVSTREAM_AVX2_CLONES void matmul(const float* X, size_t ldx, size_t n,
                                                              int in, const float* Wt, int out,
                                                              float* Y, size_t ldy) {
  size_t t = 0;
  for (; t + 4 <= n; t += 4) block<4>(X + t * ldx, ldx, in, Wt, out, Y + t * ldy, ldy);
  for (; t < n; ++t) block<1>(X + t * ldx, ldx, in, Wt, out, Y + t * ldy, ldy);
}

void rmsnorm(float* o, const float* x, const float* w, int size, float eps) {
  float ss = 0.0f;
  for (int j = 0; j < size; ++j) ss += x[j] * x[j];
  ss /= size;
  ss += eps;
  ss = 1.0f / sqrtf(ss);
  for (int j = 0; j < size; ++j) o[j] = w[j] * (ss * x[j]);
}

void softmax(float* x, size_t size) {
  float max_val = x[0];
  for (size_t i = 1; i < size; ++i)
    if (x[i] > max_val) max_val = x[i];
  float sum = 0.0f;
  for (size_t i = 0; i < size; ++i) {
    x[i] = expf(x[i] - max_val);
    sum += x[i];
  }
  for (size_t i = 0; i < size; ++i) x[i] /= sum;
}

}  // namespace kvstream::model::ops
