// KvLayout: packed defaults, validation, constructors (see include/kvstream/layout.h).
#include "kvstream/layout.h"

#include <algorithm>
#include <string>

#include "kvstream/error.h"

namespace kvstream {

namespace {
[[noreturn]] void bad(const std::string& what) { throw Error(ErrorCode::kInvalidArgument, "KV layout: " + what); }
}  // namespace

int64_t KvLayout::head_stride_bytes() const {
  return head_stride ? head_stride : int64_t(shape.head_dim) * int64_t(element_bytes(dtype));
}
int64_t KvLayout::token_stride_bytes() const {
  return token_stride ? token_stride : int64_t(shape.n_kv_heads) * head_stride_bytes();
}
int64_t KvLayout::block_stride_bytes() const {
  return block_stride ? block_stride : int64_t(block_size) * token_stride_bytes();
}
uint64_t KvLayout::max_tokens() const { return paged() ? slot_mapping.size() : capacity; }

void KvLayout::validate() const {
  if (shape.n_layers <= 0 || shape.n_kv_heads <= 0 || shape.head_dim <= 0)
    bad("the shape needs n_layers, n_kv_heads and head_dim > 0");
  if (dtype != Dtype::F16 && dtype != Dtype::BF16 && dtype != Dtype::F32) bad("unknown dtype");
  if (k.size() != size_t(shape.n_layers) || v.size() != size_t(shape.n_layers))
    bad("need one K and one V pointer per layer (" + std::to_string(shape.n_layers) + "), got " +
        std::to_string(k.size()) + " and " + std::to_string(v.size()));
  for (size_t l = 0; l < k.size(); ++l)
    if (!k[l] || !v[l]) bad("layer " + std::to_string(l) + " has a null K or V pointer");
  if (token_stride < 0 || head_stride < 0 || block_stride < 0) bad("strides must not be negative");
  constexpr int64_t kMaxBytes = int64_t(1) << 44;  // bounds every product below (no overflow)
  if (token_stride > kMaxBytes || head_stride > kMaxBytes || block_stride > kMaxBytes ||
      capacity > uint64_t(kMaxBytes) || block_size > (1u << 20) || shape.n_kv_heads > (1 << 16) ||
      shape.head_dim > (1 << 16))
    bad("a stride, the capacity, the block size or the shape is implausibly large");
  const int64_t row = int64_t(shape.head_dim) * int64_t(element_bytes(dtype));
  const int64_t hs = head_stride_bytes(), ts = token_stride_bytes();
  // No two (token, head) rows may overlap: either tokens are the outer axis (token-major) or heads
  // are, over the tokens of a block (paged) or of the whole tensor (contiguous): heads-major.
  const int64_t heads_span = int64_t(shape.n_kv_heads - 1) * hs + row;
  const int64_t tokens_per_run = paged() ? int64_t(block_size) : int64_t(std::max<uint64_t>(capacity, 1));
  const bool token_major = hs >= row && ts >= heads_span;
  const bool head_major = ts >= row && hs >= (tokens_per_run - 1) * ts + row;
  if (!token_major && !head_major)
    bad("token stride " + std::to_string(ts) + " B and head stride " + std::to_string(hs) +
        " B make (token, head) rows of " + std::to_string(row) + " B overlap");
  if (!paged()) {
    if (!slot_mapping.empty()) bad("a slot mapping needs block_size > 0 (a paged layout)");
    return;
  }
  if (capacity == 0) bad("a paged layout needs capacity (blocks) > 0");
  const int64_t bs = block_stride_bytes();
  const int64_t block_span = token_major ? int64_t(block_size - 1) * ts + heads_span
                                         : int64_t(shape.n_kv_heads - 1) * hs + int64_t(block_size - 1) * ts + row;
  if (capacity > 1 && bs < block_span)
    bad("block stride " + std::to_string(bs) + " B is smaller than a block's " + std::to_string(block_span) + " B");
  const uint64_t slots = capacity * uint64_t(block_size);
  std::vector<int64_t> used;
  used.reserve(slot_mapping.size());
  for (size_t t = 0; t < slot_mapping.size(); ++t) {
    const int64_t s = slot_mapping[t];
    if (s < 0) continue;
    if (uint64_t(s) >= slots)
      bad("token " + std::to_string(t) + " maps to slot " + std::to_string(s) + ", beyond the " +
          std::to_string(slots) + " slots of " + std::to_string(capacity) + " blocks");
    used.push_back(s);
  }
  std::sort(used.begin(), used.end());
  if (std::adjacent_find(used.begin(), used.end()) != used.end()) bad("two tokens map to one slot");
}

KvLayout KvLayout::contiguous(KvShape shape, Dtype dtype, std::vector<void*> k, std::vector<void*> v,
                              uint64_t rows) {
  KvLayout l;
  l.shape = shape;
  l.dtype = dtype;
  l.k = std::move(k);
  l.v = std::move(v);
  l.capacity = rows;
  return l;
}

KvLayout KvLayout::paged(KvShape shape, Dtype dtype, std::vector<void*> k, std::vector<void*> v,
                         uint64_t blocks, uint32_t block_size, std::vector<int64_t> slot_mapping) {
  KvLayout l = contiguous(shape, dtype, std::move(k), std::move(v), blocks);
  l.block_size = block_size;
  l.slot_mapping = std::move(slot_mapping);
  return l;
}

}  // namespace kvstream
