// kv_dest.h: where decoded K/V go — a caller-described memory layout that the decoders write
// straight into (no intermediate copy), the shape inference engines hand to a KV connector.
//
// A destination holds `capacity` token rows; the token at position p goes to row p - pos_base.
// Element (row, head, d) of layer l's K (or V) tensor lives at
//     k[l] + row_offset(row) + head * head_stride + d * elem_bytes        (bytes)
// where, with es = dest_elem_bytes(dtype),
//   contiguous (block_size == 0):  row_offset(r) = r * token_stride
//       [tokens, heads, dim] packed: token_stride = kv_dim * es, head_stride = head_dim * es (the
//       defaults when left 0); larger strides describe padded or interleaved tensors.
//   paged (block_size > 0):        s = slot_mapping[r]; if s < 0 the row is not stored (padding),
//       else row_offset(r) = (s / block_size) * block_stride + (s % block_size) * token_stride,
//       with 0 <= s < num_blocks * block_size; block_stride defaults to a block's extent. A
//       vLLM-style [num_blocks, block_size, heads, dim] cache is the packed strides (all defaults);
//       a [num_blocks, heads, block_size, dim] ("HND") one is token_stride = head_dim * es,
//       head_stride = block_size * head_dim * es.
// Elements of one head are always contiguous (stride es). The layout must not alias: distinct
// (row, head, d) of one tensor must be distinct bytes (validate() checks what it cheaply can:
// strides large enough for a head, a token's heads or a block's tokens in the packed orders).
// Memory is host memory, or CUDA device memory when on_device (only the CUDA decoder writes it);
// slot_mapping is always host memory. Neither is owned: it must outlive the decode (finish()).
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "codec/kv_cache.h"
#include "codec/safetensors.h"  // Dtype

namespace kvstream::codec {

// Bytes per element of a destination dtype.
inline size_t dest_elem_bytes(Dtype d) { return d == Dtype::F32 ? 4 : 2; }

struct KvDest {
  KvShape shape;
  Dtype dtype = Dtype::F16;
  bool on_device = false;
  std::vector<void*> k, v;     // [layer] base address of each tensor
  uint32_t capacity = 0;       // rows (contiguous: rows of the tensors; paged: slot_mapping entries)
  uint32_t pos_base = 0;       // position held by row 0
  bool keys_pre_rope = false;  // false: keys are rotated (what attention consumes)
  float rope_theta = 10000.0f;
  // Layout (bytes; 0 = the packed default described above).
  size_t token_stride = 0;
  size_t head_stride = 0;
  uint32_t block_size = 0;     // 0 = contiguous rows; > 0 = paged through slot_mapping
  uint32_t num_blocks = 0;     // paged: blocks per tensor (bounds the slots)
  size_t block_stride = 0;
  std::span<const int64_t> slot_mapping;  // paged: >= capacity entries, row -> slot (< 0: skip)

  // Throws std::invalid_argument if pointers, shape, strides or the paging fields are inconsistent.
  void validate() const;
  // The same memory seen from row `rows` on (row r of the result is row r + rows here).
  KvDest offset_rows(uint32_t rows) const;
  bool paged() const { return block_size > 0; }
  size_t elem_bytes() const { return dest_elem_bytes(dtype); }
  size_t token_stride_bytes() const { return token_stride ? token_stride : size_t(shape.kv_dim()) * elem_bytes(); }
  size_t head_stride_bytes() const { return head_stride ? head_stride : size_t(shape.head_dim) * elem_bytes(); }
  // Default: one block's extent, (block_size - 1) * token_stride + (heads - 1) * head_stride + a head.
  size_t block_stride_bytes() const {
    return block_stride ? block_stride
                        : size_t(block_size ? block_size - 1 : 0) * token_stride_bytes() +
                              size_t(shape.n_kv_heads - 1) * head_stride_bytes() + size_t(shape.head_dim) * elem_bytes();
  }
  // True when a token's heads are back to back (kv_dim contiguous elements per row).
  bool heads_packed() const { return head_stride_bytes() == size_t(shape.head_dim) * elem_bytes(); }
  // Byte offset of row r (< capacity) from a tensor base, or -1 when a paged row is not stored.
  // Throws std::invalid_argument for a slot outside [0, num_blocks * block_size) other than < 0.
  int64_t row_offset(uint32_t r) const;
  // Host memory only: rows [0, rows) of tensor (layer, kind 0 = K / 1 = V) gathered into packed
  // [rows][kv_dim] elements (rows not stored stay zero).
  std::vector<uint8_t> read_rows(int layer, int kind, uint32_t rows) const;
};

}  // namespace kvstream::codec
