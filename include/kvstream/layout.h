// kvstream/layout.h — a KV cache layout in the caller's memory (public API): where kvstream writes
// a fetched context (Transfer) and reads a context to store (put).
//
// The caller owns the memory. For each layer l there is one K tensor at k[l] and one V tensor at
// v[l]; inside each, the head_dim values of one (token, head) are contiguous elements of `dtype`,
// and everything else is described by byte strides, so engine layouts are expressed without a copy:
//
//   contiguous  [tokens, heads, head_dim]:  token t (0 = the context's first token) lives at
//       k[l] + t * token_stride + h * head_stride + d * element_bytes(dtype),   0 <= t < capacity
//   paged  [blocks, block_size, heads, head_dim] (vLLM / SGLang paged caches): token t lives in
//       slot s = slot_mapping[t], i.e. block s / block_size, offset s % block_size, at
//       k[l] + (s / block_size) * block_stride + (s % block_size) * token_stride + h * head_stride + d * e
//     with 0 <= s < capacity * block_size (capacity = blocks). A negative slot (vLLM's padding
//     slot -1) means "do not write this token"; tokens at or beyond slot_mapping.size() are not
//     written either.
//
// A stride of 0 means "packed": head_stride = head_dim * e, token_stride = n_kv_heads *
// head_stride, block_stride = block_size * token_stride. Heads-major blocks ([blocks, heads,
// block_size, head_dim], FlashInfer's HND) are token_stride = head_dim * e, head_stride =
// block_size * head_dim * e. vLLM's per-layer [2, blocks, block_size, heads, head_dim] tensor is
// k[l] = &t[0], v[l] = &t[1] with packed strides.
//
// Keys are written after RoPE (what attention consumes) unless keys_pre_rope is set. Memory is host
// memory, or CUDA device memory (memory = kCuda, in a CUDA build; see transfer.h for what is
// supported where).
//
// Contract: validate() throws kvstream::Error(kInvalidArgument) naming the first problem: a
// shape field <= 0, k/v without one pointer per layer, a null pointer, a negative stride, a stride
// smaller than the span it must hold (a (token, head) row overlapping the next), a slot outside
// the capacity, a paged layout without block_size, or two tokens mapped to one slot. kvstream never
// writes outside the addresses the formulas above give for valid tokens.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kvstream/types.h"

namespace kvstream {

enum class MemoryKind : uint8_t { kHost = 0, kCuda = 1 };

struct KvLayout {
  KvShape shape;
  Dtype dtype = Dtype::F16;
  MemoryKind memory = MemoryKind::kHost;
  int device = 0;                // CUDA device of the tensors (memory = kCuda)
  std::vector<void*> k, v;       // [layer] base addresses
  int64_t token_stride = 0;      // bytes between consecutive tokens (rows, or slots of a block)
  int64_t head_stride = 0;       // bytes between consecutive heads of one token
  int64_t block_stride = 0;      // paged: bytes between consecutive blocks
  uint32_t block_size = 0;       // paged: tokens per block; 0 = contiguous
  uint64_t capacity = 0;         // contiguous: rows; paged: blocks
  std::vector<int64_t> slot_mapping;  // paged: the slot of each context token (negative: skip)
  bool keys_pre_rope = false;

  bool paged() const { return block_size > 0; }
  // The strides with 0 replaced by the packed default.
  int64_t token_stride_bytes() const;
  int64_t head_stride_bytes() const;
  int64_t block_stride_bytes() const;
  // How many context tokens this layout can take: capacity (contiguous) or slot_mapping.size().
  uint64_t max_tokens() const;
  // Throws kvstream::Error(kInvalidArgument); see the contract.
  void validate() const;

  // Packed contiguous tensors of `rows` tokens each.
  static KvLayout contiguous(KvShape shape, Dtype dtype, std::vector<void*> k, std::vector<void*> v,
                             uint64_t rows);
  // Packed paged tensors of `blocks` blocks of `block_size` tokens; slot_mapping[t] places token t.
  static KvLayout paged(KvShape shape, Dtype dtype, std::vector<void*> k, std::vector<void*> v,
                        uint64_t blocks, uint32_t block_size, std::vector<int64_t> slot_mapping);
};

}  // namespace kvstream
