// Row copies between KvCache and caller layouts (see rows.h).
#include "api/rows.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "codec/decode_engine.h"
#include "codec/half.h"
#include "codec/kv_dest.h"
#include "codec/rope.h"
#include "kvstream/error.h"

namespace kvstream::api {

namespace {

void require_host(const KvLayout& l) {
  if (l.memory != MemoryKind::kHost)
    throw Error(ErrorCode::kInvalidArgument, "KV layout: this operation needs host memory");
}

// The (validated) layout as codec's caller-layout descriptor, row t = context token t: the one
// implementation of layout addressing and of the float -> dtype output stage, shared with the
// decoders (codec/kv_dest.h). Strides are passed explicitly (the public defaults apply).
codec::KvDest dest_of(const KvLayout& l, float rope_theta) {
  codec::KvDest d;
  d.shape = l.shape;
  d.dtype = l.dtype;
  d.k = l.k;
  d.v = l.v;
  d.capacity = uint32_t(std::min<uint64_t>(l.max_tokens(), UINT32_MAX));
  d.keys_pre_rope = l.keys_pre_rope;
  d.rope_theta = rope_theta;
  d.token_stride = size_t(l.token_stride_bytes());
  d.head_stride = size_t(l.head_stride_bytes());
  if (l.paged()) {
    d.block_size = l.block_size;
    d.num_blocks = uint32_t(std::min<uint64_t>(l.capacity, UINT32_MAX));
    d.block_stride = size_t(l.block_stride_bytes());
    d.slot_mapping = l.slot_mapping;
  }
  return d;
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
  const uint64_t room = layout.max_tokens() > begin ? layout.max_tokens() - begin : 0;
  n = uint32_t(std::min<uint64_t>(n, room));  // tokens beyond max_tokens() are not taken
  if (n == 0) return;
  const codec::KvDest dst = dest_of(layout, kv.rope_theta);
  std::vector<const float*> blocks;  // [layer * 2 + kind]: n rows of kv_dim floats
  for (int l = 0; l < kv.shape.n_layers; ++l) {
    blocks.push_back(kv.k_row(l, src_row));
    blocks.push_back(kv.v_row(l, src_row));
  }
  codec::store_float_rows(blocks.data(), kv.keys_pre_rope, begin, n, dst, begin, codec::thread_decode_workspace());
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
  const codec::KvDest src = dest_of(layout, rope_theta);
  for (uint64_t t = 0; t < n; ++t) {
    const int64_t off = t < src.capacity ? src.row_offset(uint32_t(t)) : -1;
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
