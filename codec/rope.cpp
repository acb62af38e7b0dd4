#include "codec/rope.h"

#include <cmath>
#include <stdexcept>

namespace kvstream {

void rope_angles(float theta, int head_dim, int pos, bool inverse, float* out) {
  for (int i = 0; i < head_dim; i += 2) {
    // Same expression order as llama2.c run.c: freq = 1 / theta^(i / head_size).
    const float freq = 1.0f / powf(theta, i / static_cast<float>(head_dim));
    const float val = pos * freq;
    out[i] = cosf(val);
    out[i + 1] = inverse ? -sinf(val) : sinf(val);
  }
}

void rope_cs_rows(float theta, int head_dim, uint32_t pos0, uint32_t n, bool inverse, float* out) {
  if (head_dim <= 0 || head_dim % 2) throw std::invalid_argument("rope_cs_rows: head_dim must be even");
  for (uint32_t r = 0; r < n; ++r)  // as rope_rotate_rows: int(first_pos) + r
    rope_angles(theta, head_dim, int(pos0) + static_cast<int>(r), inverse, out + size_t(r) * size_t(head_dim));
}

namespace {
// One pair rotation (v0, v1) by (c, s) in run.c's operation order.
inline void rotate_pair(float* x, float c, float s) {
  const float v0 = x[0], v1 = x[1];
  x[0] = v0 * c - v1 * s;
  x[1] = v0 * s + v1 * c;
}
}  // namespace

void rope_rotate(float* row, int n_heads, int head_dim, int pos, float theta, bool inverse) {
  rope_rotate_rows(&row, 1, 1, n_heads, head_dim, pos, theta, inverse);
}

void rope_rotate_rows(float* const* bases, int n_bases, size_t n_rows, int n_heads, int head_dim,
                      int pos0, float theta, bool inverse) {
  if (head_dim % 2 != 0) throw std::invalid_argument("rope_rotate_rows: head_dim must be even");
  if (head_dim > 1024) throw std::invalid_argument("rope_rotate_rows: head_dim over 1024");
  const int half = head_dim / 2, row = n_heads * head_dim;
  float cs[1024];
  for (size_t r = 0; r < n_rows; ++r) {
    rope_angles(theta, head_dim, pos0 + static_cast<int>(r), inverse, cs);
    for (int b = 0; b < n_bases; ++b) {
      float* x = bases[b] + r * row;
      for (int h = 0; h < n_heads; ++h, x += head_dim)
        for (int j = 0; j < half; ++j) rotate_pair(x + 2 * j, cs[2 * j], cs[2 * j + 1]);
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
