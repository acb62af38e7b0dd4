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
