#include "store/kv_engine.h"

namespace kvstream::store {
namespace {

class ModelEngine final : public KvEngine {
 public:
  ModelEngine(const model::Model& m, const model::Tokenizer& t) : m_(m), t_(t) {}
  std::string model_name() const override { return m_.name(); }
  int window() const override { return m_.config().seq_len; }
  KvCache new_cache() const override { return m_.new_cache(/*pre_rope=*/true); }
  void extend(KvCache& kv, std::span<const int32_t> tokens) const override {
    if (!tokens.empty()) m_.recompute(kv, tokens);
  }
  std::vector<int32_t> tokenize(const std::string& text, bool bos) const override {
    return t_.encode(text, bos, false);
  }

 private:
  const model::Model& m_;
  const model::Tokenizer& t_;
};

}  // namespace

std::unique_ptr<KvEngine> make_model_engine(const model::Model& m, const model::Tokenizer& tok) {
  return std::make_unique<ModelEngine>(m, tok);
}

}  // namespace kvstream::store
