// KV cache files in the safetensors format (https://github.com/huggingface/safetensors).
//
// Layout written: u64 little-endian header length N, N bytes of JSON (space-padded to a multiple
// of 8), then the data. Tensors: k.{layer} and v.{layer} with shape [tokens, kv_heads, head_dim]
// and dtype F32, F16 or BF16 (all K/V tensors share one dtype), and `tokens` (I32 [tokens]).
// __metadata__ (string values): format "kvstream-kv", model, rope_theta, n_layers, n_kv_heads,
// head_dim, keys_pre_rope ("true"/"false"), dtype.
//
// Contract: reading accepts any valid safetensors file with exactly these tensors (any dtype among
// F32/F16/BF16 per tensor; I32 for tokens) and rejects, with std::runtime_error naming the
// problem, a header length beyond the file or over 64 MiB, bad JSON, unknown dtypes or names,
// data offsets that are unordered, out of range, overlapping or leave holes, byte sizes that
// disagree with shape x dtype, missing layers or tensors, kv_heads x head_dim over 2^24, and
// inconsistent shapes or metadata.
// Allocation is bounded by the input size. Converting F32 -> F16/BF16 rounds to nearest even.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "codec/kv_cache.h"
#include "kvstream/types.h"  // Dtype

namespace kvstream {

const char* dtype_name(Dtype d);                // "F32", "F16", "BF16"
Dtype parse_dtype(std::string_view s);          // accepts f32/F32/fp32, f16/fp16, bf16; throws
size_t dtype_size(Dtype d);                     // bytes per element

std::vector<uint8_t> kv_to_safetensors(const KvCache& kv, Dtype dtype = Dtype::F32);
void write_safetensors(const std::string& path, const KvCache& kv, Dtype dtype = Dtype::F32);

KvCache kv_from_safetensors(const uint8_t* data, size_t size, const std::string& what = "kv");
KvCache read_safetensors(const std::string& path);

// What a KV file holds, without converting the tensors (for `kvstream kv-info`).
struct SafetensorsInfo {
  size_t file_bytes = 0;
  size_t header_bytes = 0;  // JSON header length
  size_t num_tokens = 0;
  KvShape shape;
  std::string dtype;  // K/V dtype name ("mixed" if they differ)
  std::string model_name;
  float rope_theta = 0;
  bool keys_pre_rope = false;
  std::vector<std::pair<std::string, std::string>> metadata;
};
SafetensorsInfo inspect_safetensors(const std::string& path);

}  // namespace kvstream
