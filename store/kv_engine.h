// KvEngine: the model side of the replay and truncation experiments — tokenizes text and computes
// real KV caches (pre-RoPE keys) — behind an interface so that store tests can use a synthetic one.
//
// Contract: new_cache() is empty with keys_pre_rope = true; extend(kv, tokens) appends the KV of
// `tokens` at positions kv.num_tokens()... (a pre-RoPE cache rotates its keys on the fly at their
// row positions, so slicing off the oldest rows *is* re-applying RoPE at the new positions).
// window() is the model's trained context length.
#pragma once
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "codec/kv_cache.h"
#include "model/model.h"
#include "model/tokenizer.h"

namespace kvstream::store {

class KvEngine {
 public:
  virtual ~KvEngine() = default;
  virtual std::string model_name() const = 0;
  virtual int window() const = 0;
  virtual KvCache new_cache() const = 0;
  virtual void extend(KvCache& kv, std::span<const int32_t> tokens) const = 0;
  virtual std::vector<int32_t> tokenize(const std::string& text, bool bos) const = 0;
};

// The reference model (model/model.h). Both are referenced, not copied: they must outlive it.
std::unique_ptr<KvEngine> make_model_engine(const model::Model& m, const model::Tokenizer& tok);

}  // namespace kvstream::store
