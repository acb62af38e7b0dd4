// kvstream/types.h — the shape of a model's KV cache and the element types kvstream reads and
// writes (public API; the library's internals use the same two types).
//
// Contract: a KvShape is valid when every field is positive; kv_dim() = n_kv_heads * head_dim is
// the number of K (or V) values per token and layer. Dtype values are stable.
#pragma once
#include <cstddef>
#include <cstdint>

namespace kvstream {

struct KvShape {
  int n_layers = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int kv_dim() const { return n_kv_heads * head_dim; }
  bool operator==(const KvShape& o) const {
    return n_layers == o.n_layers && n_kv_heads == o.n_kv_heads && head_dim == o.head_dim;
  }
  bool operator!=(const KvShape& o) const { return !(*this == o); }
};

// Element type of KV tensors: IEEE fp32, IEEE fp16 (binary16) or bfloat16.
enum class Dtype { F32 = 0, F16 = 1, BF16 = 2 };

// Bytes per element: 4 for F32, 2 for F16 and BF16.
inline size_t element_bytes(Dtype d) { return d == Dtype::F32 ? 4 : 2; }

}  // namespace kvstream
