// Caller-described destination layouts (kv_dest.h).
#include "codec/kv_dest.h"

#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

namespace kvstream::codec {

void KvDest::validate() const {
  if (shape.n_layers <= 0 || shape.n_kv_heads <= 0 || shape.head_dim <= 0)
    throw std::invalid_argument("KvDest: empty shape");
  if (k.size() != size_t(shape.n_layers) || v.size() != size_t(shape.n_layers))
    throw std::invalid_argument("KvDest: need one K and one V tensor per layer");
  for (int l = 0; l < shape.n_layers; ++l)
    if (!k[size_t(l)] || !v[size_t(l)]) throw std::invalid_argument("KvDest: null tensor pointer");
  const size_t es = elem_bytes(), head = size_t(shape.head_dim) * es;
  const size_t ts = token_stride_bytes(), hs = head_stride_bytes();
  if (hs < head) throw std::invalid_argument("KvDest: head_stride smaller than a head");
  if (ts < head) throw std::invalid_argument("KvDest: token_stride smaller than a head");
  // Either heads are the inner index of a token (token_stride covers a row's heads: [.., tokens,
  // heads, dim]) or the outer one (head_stride covers the tokens of a block, or of all rows when
  // not paged: [.., heads, tokens, dim]); anything else makes heads and tokens collide.
  const size_t rows_per_block = paged() ? block_size : capacity;
  const size_t heads_span = size_t(shape.n_kv_heads - 1) * hs + head;
  const size_t tokens_span = (rows_per_block ? rows_per_block - 1 : 0) * ts + head;
  if (ts < heads_span && hs < tokens_span)
    throw std::invalid_argument("KvDest: token_stride " + std::to_string(ts) + " and head_stride " +
                                std::to_string(hs) + " make heads and tokens overlap");
  if (paged()) {
    if (num_blocks == 0) throw std::invalid_argument("KvDest: paged layout without blocks");
    if (slot_mapping.size() < capacity)
      throw std::invalid_argument("KvDest: slot_mapping has " + std::to_string(slot_mapping.size()) +
                                  " entries for " + std::to_string(capacity) + " rows");
    if (block_stride_bytes() < heads_span + tokens_span - head)
      throw std::invalid_argument("KvDest: block_stride smaller than a block");
    if (uint64_t(num_blocks) * block_size > uint64_t(std::numeric_limits<int64_t>::max()))
      throw std::invalid_argument("KvDest: too many slots");
  }
}

KvDest KvDest::offset_rows(uint32_t rows) const {
  if (rows > capacity) throw std::invalid_argument("KvDest::offset_rows: beyond capacity");
  KvDest d = *this;
  d.capacity = capacity - rows;
  if (paged()) {
    d.slot_mapping = slot_mapping.subspan(rows);
    return d;
  }
  const size_t bytes = size_t(rows) * token_stride_bytes();
  for (auto& p : d.k) p = static_cast<uint8_t*>(p) + bytes;
  for (auto& p : d.v) p = static_cast<uint8_t*>(p) + bytes;
  return d;
}

int64_t KvDest::row_offset(uint32_t r) const {
  if (!paged()) return int64_t(size_t(r) * token_stride_bytes());
  const int64_t s = slot_mapping[r];
  if (s < 0) return -1;
  if (uint64_t(s) >= uint64_t(num_blocks) * block_size)
    throw std::invalid_argument("KvDest: slot " + std::to_string(s) + " of row " + std::to_string(r) +
                                " outside the " + std::to_string(uint64_t(num_blocks) * block_size) + " slots");
  return int64_t(uint64_t(s) / block_size * block_stride_bytes() + uint64_t(s) % block_size * token_stride_bytes());
}

std::vector<uint8_t> KvDest::read_rows(int layer, int kind, uint32_t rows) const {
  if (on_device) throw std::invalid_argument("KvDest::read_rows: device memory");
  if (layer < 0 || layer >= shape.n_layers || kind < 0 || kind > 1 || rows > capacity)
    throw std::invalid_argument("read_back: bad layer, kind or rows");
  const size_t head = size_t(shape.head_dim) * elem_bytes(), row = size_t(shape.n_kv_heads) * head;
  std::vector<uint8_t> out(size_t(rows) * row);
  const auto* base = static_cast<const uint8_t*>(kind == 0 ? k[size_t(layer)] : v[size_t(layer)]);
  for (uint32_t r = 0; r < rows; ++r) {
    const int64_t off = row_offset(r);
    if (off < 0) continue;
    for (int h = 0; h < shape.n_kv_heads; ++h)
      std::memcpy(out.data() + r * row + size_t(h) * head, base + off + size_t(h) * head_stride_bytes(), head);
  }
  return out;
}

}  // namespace kvstream::codec
