// Checkpoint: a llama2.c model file (legacy layout) loaded and validated into fp32 weights.
//
// File layout: 7 int32 header (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
// seq_len; a negative vocab_size means a separate classifier follows), then fp32 tensors:
// token_embedding [vocab, dim], rms_att [L, dim], wq [L, dim, dim], wk [L, kv_dim, dim],
// wv [L, kv_dim, dim], wo [L, dim, dim], rms_ffn [L, dim], w1 [L, hidden, dim],
// w2 [L, dim, hidden], w3 [L, hidden, dim], rms_final [dim], a legacy RoPE table
// (seq_len * head_size floats, skipped), then wcls [vocab, dim] only when vocab_size < 0.
//
// Contract: load_checkpoint() validates the header (positive sizes, dim divisible by n_heads,
// n_heads divisible by n_kv_heads, even head_size, bounded sizes) and that the file length is
// exactly what the header implies, before allocating anything; it throws std::runtime_error with
// the path and the reason otherwise. It never reads outside the file.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kvstream::model {

struct Config {
  int dim = 0;         // transformer width
  int hidden_dim = 0;  // FFN width
  int n_layers = 0;
  int n_heads = 0;     // query heads
  int n_kv_heads = 0;  // key/value heads (grouped-query attention when < n_heads)
  int vocab_size = 0;  // always positive here
  int seq_len = 0;     // trained context length
  bool shared_classifier = true;
  float rope_theta = 10000.0f;
  float rms_eps = 1e-5f;
  int head_dim() const { return dim / n_heads; }
  int kv_dim() const { return n_kv_heads * head_dim(); }
  // Bytes of the file this config implies (header, weights, legacy RoPE table, classifier).
  uint64_t file_bytes() const;
};

// Weights exactly as in the file (row-major [out][in] matrices), one vector per tensor kind
// holding all layers back to back.
struct Checkpoint {
  Config config;
  std::vector<float> token_embedding;  // [vocab][dim]
  std::vector<float> rms_att;          // [L][dim]
  std::vector<float> wq;               // [L][dim][dim]
  std::vector<float> wk;               // [L][kv_dim][dim]
  std::vector<float> wv;               // [L][kv_dim][dim]
  std::vector<float> wo;               // [L][dim][dim]
  std::vector<float> rms_ffn;          // [L][dim]
  std::vector<float> w1;               // [L][hidden][dim]
  std::vector<float> w2;               // [L][dim][hidden]
  std::vector<float> w3;               // [L][hidden][dim]
  std::vector<float> rms_final;        // [dim]
  std::vector<float> wcls;             // [vocab][dim]; empty when shared with token_embedding
};

// Parses a checkpoint held in memory (`what` names it in error messages).
Checkpoint parse_checkpoint(const std::vector<uint8_t>& bytes, const std::string& what = "checkpoint");
// Reads and parses a checkpoint file. Throws std::runtime_error on I/O or format errors.
Checkpoint load_checkpoint(const std::string& path);

}  // namespace kvstream::model
