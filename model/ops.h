// Numeric kernels of the reference model (internal to model/). Each reproduces llama2.c run.c's
// float arithmetic in the same order (sums run from index 0 upward starting at 0.0f), so a
// batched call equals per-token calls bit for bit and matches run.c up to libm.
#pragma once
#include <cstddef>

namespace kvstream::model::ops {

// Y[t][o] = sum_i X[t][i] * Wt[i][o] for t < n, o < out (Wt is the [out][in] weight transposed).
// Row strides: X ldx, Y ldy. Blocked over tokens so each weight row is reused from L1.
void matmul(const float* X, size_t ldx, size_t n, int in, const float* Wt, int out, float* Y,
            size_t ldy);

// o = w * (1/sqrt(mean(x^2) + eps) * x), run.c rmsnorm (o may alias x).
void rmsnorm(float* o, const float* x, const float* w, int size, float eps);

// s[u] = (sum_i q[i] * kt[i * ld + u]) / scale for u < len: run.c's attention scores for one
// head, with that head's keys transposed ([head_dim][ld]).
void attention_scores(const float* q, const float* kt, size_t ld, int head_dim, size_t len,
                      float scale, float* s);

// In-place run.c softmax over x[0..size).
void softmax(float* x, size_t size);

}  // namespace kvstream::model::ops
