#include "codec/rope.h"

#include <cmath>
#include <stdexcept>

namespace kvstream {

void rope_rotate(float* row, int n_heads, int head_dim, int pos, float theta, bool inverse) {
  if (head_dim % 2 != 0) throw std::invalid_argument("rope_rotate: head_dim must be even");
  for (int h = 0; h < n_heads; ++h) {
    float* x = row + h * head_dim;
    for (int i = 0; i < head_dim; i += 2) {
      // Same expression order as llama2.c run.c: freq = 1 / theta^(i / head_size).
      const float freq = 1.0f / powf(theta, i / static_cast<float>(head_dim));
      const float val = pos * freq;
      const float fcr = cosf(val);
      const float fci = inverse ? -sinf(val) : sinf(val);
      const float v0 = x[i], v1 = x[i + 1];
      x[i] = v0 * fcr - v1 * fci;
      x[i + 1] = v0 * fci + v1 * fcr;
    }
  }
}

void rope_rotate_rows(float* const* bases, int n_bases, size_t n_rows, int n_heads, int head_dim,
                      int pos0, float theta, bool inverse) {
  if (head_dim % 2 != 0) throw std::invalid_argument("rope_rotate_rows: head_dim must be even");
  const int half = head_dim / 2, row = n_heads * head_dim;
  float fcr[512], fci[512];
  if (half > 512) throw std::invalid_argument("rope_rotate_rows: head_dim over 1024");
  for (size_t r = 0; r < n_rows; ++r) {
    const int pos = pos0 + static_cast<int>(r);
    for (int i = 0; i < head_dim; i += 2) {  // exactly rope_rotate()'s expressions
      const float freq = 1.0f / powf(theta, i / static_cast<float>(head_dim));
      const float val = pos * freq;
      fcr[i / 2] = cosf(val);
      fci[i / 2] = inverse ? -sinf(val) : sinf(val);
    }
    for (int b = 0; b < n_bases; ++b) {
      float* x = bases[b] + r * row;
      for (int h = 0; h < n_heads; ++h, x += head_dim)
        for (int j = 0; j < half; ++j) {
          const float v0 = x[2 * j], v1 = x[2 * j + 1];
          x[2 * j] = v0 * fcr[j] - v1 * fci[j];
          x[2 * j + 1] = v0 * fci[j] + v1 * fcr[j];
        }
    }
  }
}

static void rotate_all_keys(KvCache& kv, int start_pos, bool inverse) {
  for (int l = 0; l < kv.shape.n_layers; ++l)
    for (size_t t = 0; t < kv.num_tokens(); ++t)
      rope_rotate(kv.k_row(l, t), kv.shape.n_kv_heads, kv.shape.head_dim,
                  start_pos + static_cast<int>(t), kv.rope_theta, inverse);
}

void rope_apply_to_keys(KvCache& kv, int start_pos) {
  if (!kv.keys_pre_rope) return;
  rotate_all_keys(kv, start_pos, false);
  kv.keys_pre_rope = false;
}

void rope_remove_from_keys(KvCache& kv, int start_pos) {
  if (kv.keys_pre_rope) return;
  rotate_all_keys(kv, start_pos, true);
  kv.keys_pre_rope = true;
}

}  // namespace kvstream
