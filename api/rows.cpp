// Row copies between KvCache and caller layouts (see rows.h).
#include "api/rows.h"

#include <cstring>
#include <vector>

#include "codec/half.h"
#include "codec/rope.h"
#include "kvstream/error.h"

namespace kvstream::api {

namespace {

void require_host(const KvLayout& l) {
  if (l.memory != MemoryKind::kHost)
    throw Error(ErrorCode::kInvalidArgument, "KV layout: this operation needs host memory");
}

// Byte offset of (token t, head 0) in a layer's tensor, or -1 when the layout skips the token.
int64_t token_offset(const KvLayout& l, uint64_t t) {
  if (t >= l.max_tokens()) return -1;
  if (!l.paged()) return int64_t(t) * l.token_stride_bytes();
  const int64_t s = l.slot_mapping[t];
  if (s < 0) return -1;
  return (s / l.block_size) * l.block_stride_bytes() + (s % l.block_size) * l.token_stride_bytes();
}

void store_row(const float* src, void* dst, int n, Dtype d) {
  switch (d) {
    case Dtype::F32: std::memcpy(dst, src, size_t(n) * 4); return;
    case Dtype::F16: f32_to_f16(src, static_cast<uint16_t*>(dst), size_t(n)); return;
    case Dtype::BF16: f32_to_bf16(src, static_cast<uint16_t*>(dst), size_t(n)); return;
  }
}

void load_row(const void* src, float* dst, int n, Dtype d) {
  switch (d) {
    case Dtype::F32: std::memcpy(dst, src, size_t(n) * 4); return;
    case Dtype::F16: f16_to_f32(static_cast<const uint16_t*>(src), dst, size_t(n)); return;
    case Dtype::BF16: bf16_to_f32(static_cast<const uint16_t*>(src), dst, size_t(n)); return;
  }
}

}  // namespace

void to_layout(const KvCache& kv, uint32_t src_row, uint32_t begin, uint32_t n, const KvLayout& layout) {
  require_host(layout);
  const KvShape& s = kv.shape;
  const int hd = s.head_dim, heads = s.n_kv_heads, kd = s.kv_dim();
  const int64_t hs = layout.head_stride_bytes();
  const KvCache* src = &kv;
  KvCache pre;  // keys un-rotated when the layout wants them before RoPE
  if (layout.keys_pre_rope) {
    pre = kv.slice(src_row, size_t(src_row) + n);
    rope_remove_from_keys(pre, int(begin));
    src = &pre;
    src_row = 0;
  }
  // A token's heads back to back: one conversion per (token, layer, kind) row.
  const bool heads_packed = hs == int64_t(hd) * int64_t(element_bytes(layout.dtype));
  for (uint32_t i = 0; i < n; ++i) {
    const int64_t off = token_offset(layout, uint64_t(begin) + i);
    if (off < 0) continue;
    for (int l = 0; l < s.n_layers; ++l) {
      const float* kr = src->k_row(l, src_row + i);
      const float* vr = src->v_row(l, src_row + i);
      auto* kb = static_cast<uint8_t*>(layout.k[size_t(l)]) + off;
      auto* vb = static_cast<uint8_t*>(layout.v[size_t(l)]) + off;
      if (heads_packed) {
        store_row(kr, kb, kd, layout.dtype);
        store_row(vr, vb, kd, layout.dtype);
        continue;
      }
      for (int h = 0; h < heads; ++h) {
        store_row(kr + h * hd, kb + h * hs, hd, layout.dtype);
        store_row(vr + h * hd, vb + h * hs, hd, layout.dtype);
      }
    }
  }
}

KvCache from_layout(const KvLayout& layout, uint64_t n, float rope_theta) {
  require_host(layout);
  if (n > layout.max_tokens())
    throw Error(ErrorCode::kInvalidArgument, "KV layout holds " + std::to_string(layout.max_tokens()) +
                                                 " tokens, " + std::to_string(n) + " were asked for");
  const KvShape& s = layout.shape;
  KvCache kv(s, {}, rope_theta, layout.keys_pre_rope);
  kv.resize(size_t(n));
  const int hd = s.head_dim;
  const int64_t hs = layout.head_stride_bytes();
  for (uint64_t t = 0; t < n; ++t) {
    const int64_t off = token_offset(layout, t);
    if (off < 0)
      throw Error(ErrorCode::kInvalidArgument, "KV layout: token " + std::to_string(t) + " has no slot");
    for (int l = 0; l < s.n_layers; ++l) {
      const auto* kb = static_cast<const uint8_t*>(layout.k[size_t(l)]) + off;
      const auto* vb = static_cast<const uint8_t*>(layout.v[size_t(l)]) + off;
      for (int h = 0; h < s.n_kv_heads; ++h) {
        load_row(kb + h * hs, kv.k_row(l, size_t(t)) + h * hd, hd, layout.dtype);
        load_row(vb + h * hs, kv.v_row(l, size_t(t)) + h * hd, hd, layout.dtype);
      }
    }
  }
  if (kv.keys_pre_rope) {  // what the caller holds before RoPE: rotate like attention would
    rope_apply_to_keys(kv, 0);
    kv.keys_pre_rope = false;
  }
  return kv;
}

}  // namespace kvstream::api
