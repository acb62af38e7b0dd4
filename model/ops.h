// Numeric kernels of the reference model (internal to model/). matmul and rmsnorm reproduce
// llama2.c run.c's float arithmetic in the same order (sums from index 0 upward starting at 0.0f);
// attend and swiglu use a vectorised expf (~1 ulp) and a lane-wise softmax sum, so they match
// run.c to ~1e-6. Every result depends only on its own position's inputs, never on how many
// tokens share a call, so batched prefill equals token-by-token bit for bit.
#pragma once
#include <cstddef>
#include <cstdint>

namespace kvstream::model::ops {

// Y[t][o] = sum_i X[t][i] * Wt[i][o] for t < n, o < out (Wt is the [out][in] weight transposed).
// Row strides: X ldx, Y ldy. Blocked over tokens so each weight row is reused from L1.
void matmul(const float* X, size_t ldx, size_t n, int in, const float* Wt, int out, float* Y,
            size_t ldy);

// o = w * (1/sqrt(mean(x^2) + eps) * x), run.c rmsnorm (o may alias x).
void rmsnorm(float* o, const float* x, const float* w, int size, float eps);

// Attention of nq query heads (q, q + hs, ...) sharing one KV head, at a position that sees
// len positions: scores s[u] = (q . k_u) / scale with keys transposed in kt ([hs][ld]), a
// vectorised softmax, then out[r*hs + i] = sum_u a_r[u] * v_u[i], where v_u is vp + u*vstride for
// u < P and vn + (u-P)*vstride after. kt's rows (ld) and scratch's nq rows (sld) must hold len
// rounded up to a multiple of 8 floats (the padding is read and written, then ignored).
void attend(const float* q, int nq, int hs, const float* kt, size_t ld, size_t len, float scale,
            const float* vp, size_t P, const float* vn, size_t vstride, float* scratch, size_t sld,
            float* out);

// out[j * ld + t0 + t] = rows[t * width + j] for t < n, j < width (8x8 register blocks).
void transpose_rows(const float* rows, size_t n, int width, float* out, size_t ld, size_t t0);

// h1[i] = silu(h1[i]) * h3[i] for i < n (vectorised exp).
void swiglu(float* h1, const float* h3, size_t n);

// In-place run.c softmax over x[0..size).
void softmax(float* x, size_t size);

}  // namespace kvstream::model::ops
