#include "model/checkpoint.h"

#include <cstring>
#include <stdexcept>

#include "kvstream/error.h"
#include "model/file_bytes.h"

namespace kvstream::model {

namespace {

constexpr uint64_t kHeaderBytes = 7 * sizeof(int32_t);
constexpr int kMaxDim = 1 << 16;  // bounds every header field so products cannot overflow

struct Counts {  // float counts of each tensor
  uint64_t emb, rms, wq, wkv, wo, w1, w2, rms_final, rope, cls;
};

Counts counts(const Config& c) {
  const uint64_t d = c.dim, h = c.hidden_dim, L = c.n_layers, kv = c.kv_dim(), V = c.vocab_size;
  Counts n{};
  n.emb = V * d;
  n.rms = L * d;
  n.wq = L * d * d;
  n.wkv = L * kv * d;
  n.wo = L * d * d;
  n.w1 = L * h * d;
  n.w2 = L * d * h;
  n.rms_final = d;
  n.rope = uint64_t(c.seq_len) * c.head_dim();  // freq_cis_real + freq_cis_imag
  n.cls = c.shared_classifier ? 0 : V * d;
  return n;
}

[[noreturn]] void fail(const std::string& what, const std::string& why) {
  throw kvstream::Error(ErrorCode::kCorrupt, what + ": invalid llama2.c checkpoint: " + why);
}

}  // namespace

uint64_t Config::file_bytes() const {
  const Counts n = counts(*this);
  const uint64_t floats = n.emb + 2 * n.rms + n.wq + 2 * n.wkv + n.wo + 2 * n.w1 + n.w2 +
                          n.rms_final + n.rope + n.cls;
  return kHeaderBytes + floats * sizeof(float);
}

Checkpoint parse_checkpoint(const std::vector<uint8_t>& bytes, const std::string& what) {
  if (bytes.size() < kHeaderBytes)
    fail(what, "file is " + std::to_string(bytes.size()) + " bytes, shorter than the 28-byte header");
  int32_t h[7];
  std::memcpy(h, bytes.data(), sizeof(h));
  const char* names[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
  for (int i = 0; i < 7; ++i) {
    const int64_t mag = h[i] < 0 ? -int64_t(h[i]) : int64_t(h[i]);
    if ((i != 5 && h[i] <= 0) || h[i] == 0 || mag > kMaxDim)
      fail(what, std::string("header field ") + names[i] + " = " + std::to_string(h[i]) +
                     " is out of range (1.." + std::to_string(kMaxDim) + ")");
  }
  Config c;
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.shared_classifier = h[5] > 0;
  c.vocab_size = h[5] > 0 ? h[5] : -h[5];
  c.seq_len = h[6];
  if (c.dim % c.n_heads != 0)
    fail(what, "dim " + std::to_string(c.dim) + " is not divisible by n_heads " + std::to_string(c.n_heads));
  if (c.n_kv_heads > c.n_heads || c.n_heads % c.n_kv_heads != 0)
    fail(what, "n_heads " + std::to_string(c.n_heads) + " is not a multiple of n_kv_heads " +
                   std::to_string(c.n_kv_heads));
  if (c.head_dim() % 2 != 0) fail(what, "head size " + std::to_string(c.head_dim()) + " is odd");
  const uint64_t want = c.file_bytes();
  if (bytes.size() != want)
    fail(what, "file is " + std::to_string(bytes.size()) + " bytes but its header (dim " +
                   std::to_string(c.dim) + ", hidden " + std::to_string(c.hidden_dim) + ", layers " +
                   std::to_string(c.n_layers) + ", heads " + std::to_string(c.n_heads) + "/" +
                   std::to_string(c.n_kv_heads) + ", vocab " + std::to_string(h[5]) + ", seq_len " +
                   std::to_string(c.seq_len) + ") implies " + std::to_string(want) +
                   (bytes.size() < want ? " (truncated)" : " (trailing data)"));

  const Counts n = counts(c);
  Checkpoint ck;
  ck.config = c;
  size_t off = kHeaderBytes;
  auto take = [&](std::vector<float>& dst, uint64_t count) {
    dst.resize(count);
    std::memcpy(dst.data(), bytes.data() + off, count * sizeof(float));
    off += count * sizeof(float);
  };
  take(ck.token_embedding, n.emb);
  take(ck.rms_att, n.rms);
  take(ck.wq, n.wq);
  take(ck.wk, n.wkv);
  take(ck.wv, n.wkv);
  take(ck.wo, n.wo);
  take(ck.rms_ffn, n.rms);
  take(ck.w1, n.w1);
  take(ck.w2, n.w2);
  take(ck.w3, n.w1);
  take(ck.rms_final, n.rms_final);
  off += n.rope * sizeof(float);  // legacy RoPE table: skipped
  if (!c.shared_classifier) take(ck.wcls, n.cls);
  return ck;
}

Checkpoint load_checkpoint(const std::string& path) {
  return parse_checkpoint(read_file_bytes(path, "checkpoint"), path);
}

}  // namespace kvstream::model
