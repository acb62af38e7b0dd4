// KvCache: the in-memory KV cache of a llama-family model, the unit every layer exchanges.
//
// Contract: for each layer l, k[l] and v[l] hold num_tokens() rows of kv_dim() floats, row-major
// [token][kv_head][head_dim] (the safetensors layout [tokens, kv_heads, head_dim]). tokens[t] is
// the token id at position t. keys_pre_rope says whether k holds keys before rotary embedding
// (AttentionStore's decoupled positional encoding) or after it (what attention consumes).
// validate() throws std::invalid_argument when the sizes disagree with the shape.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kvstream/types.h"  // KvShape

namespace kvstream {

struct KvCache {
  KvShape shape;
  std::string model_name;
  float rope_theta = 10000.0f;
  bool keys_pre_rope = false;
  std::vector<int32_t> tokens;
  std::vector<std::vector<float>> k;  // [layer][token * kv_dim + head * head_dim + d]
  std::vector<std::vector<float>> v;

  KvCache() = default;
  // An empty cache of the given shape (no tokens yet).
  explicit KvCache(KvShape s, std::string model = {}, float theta = 10000.0f, bool pre_rope = false);

  size_t num_tokens() const { return tokens.size(); }
  // Values per token over all layers and both kinds: 2 * n_layers * kv_dim.
  size_t values_per_token() const { return 2ull * shape.n_layers * shape.kv_dim(); }
  float* k_row(int layer, size_t t) { return k[layer].data() + t * shape.kv_dim(); }
  float* v_row(int layer, size_t t) { return v[layer].data() + t * shape.kv_dim(); }
  const float* k_row(int layer, size_t t) const { return k[layer].data() + t * shape.kv_dim(); }
  const float* v_row(int layer, size_t t) const { return v[layer].data() + t * shape.kv_dim(); }

  // Grow or shrink to n tokens (new rows are zero, new token ids are 0).
  void resize(size_t n);
  // Throws std::invalid_argument if any tensor's size disagrees with shape and num_tokens().
  void validate() const;
  // Tokens [begin, end) as a new cache with the same metadata. Throws std::out_of_range.
  KvCache slice(size_t begin, size_t end) const;
  // Appends other's tokens; shapes and key convention must match (std::invalid_argument).
  void append(const KvCache& other);
};

}  // namespace kvstream
