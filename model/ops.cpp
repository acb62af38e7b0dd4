#include "model/ops.h"

#include <cmath>
#include <cstring>

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

}  // namespace

// No FMA contraction happens (ISO C++ mode implies -ffp-contract=off), so the AVX2 clone computes
// exactly what the baseline one does.
__attribute__((target_clones("avx2", "default"))) void matmul(const float* X, size_t ldx, size_t n,
                                                              int in, const float* Wt, int out,
                                                              float* Y, size_t ldy) {
  size_t t = 0;
  for (; t + 4 <= n; t += 4) block<4>(X + t * ldx, ldx, in, Wt, out, Y + t * ldy, ldy);
  for (; t < n; ++t) block<1>(X + t * ldx, ldx, in, Wt, out, Y + t * ldy, ldy);
}

__attribute__((target_clones("avx2", "default"))) void attention_scores(
    const float* q, const float* kt, size_t ld, int head_dim, size_t len, float scale, float* s) {
  const float q0 = q[0];
  for (size_t u = 0; u < len; ++u) s[u] = q0 * kt[u];
  for (int i = 1; i < head_dim; ++i) {
    const float qi = q[i];
    const float* ki = kt + size_t(i) * ld;
    for (size_t u = 0; u < len; ++u) s[u] += qi * ki[u];
  }
  for (size_t u = 0; u < len; ++u) s[u] /= scale;
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
