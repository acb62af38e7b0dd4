#include "codec/kv_cache.h"

#include <stdexcept>

namespace kvstream {

KvCache::KvCache(KvShape s, std::string model, float theta, bool pre_rope)
    : shape(s), model_name(std::move(model)), rope_theta(theta), keys_pre_rope(pre_rope) {
  if (s.n_layers <= 0 || s.n_kv_heads <= 0 || s.head_dim <= 0)
    throw std::invalid_argument("KvCache: layers, kv heads and head_dim must be positive");
  k.resize(s.n_layers);
  v.resize(s.n_layers);
}

void KvCache::resize(size_t n) {
  tokens.resize(n, 0);
  const size_t per_layer = n * shape.kv_dim();
  for (auto& t : k) t.resize(per_layer, 0.0f);
  for (auto& t : v) t.resize(per_layer, 0.0f);
}

void KvCache::validate() const {
  if (shape.n_layers <= 0 || shape.n_kv_heads <= 0 || shape.head_dim <= 0)
    throw std::invalid_argument("KvCache: non-positive shape");
  if (k.size() != size_t(shape.n_layers) || v.size() != size_t(shape.n_layers))
    throw std::invalid_argument("KvCache: expected " + std::to_string(shape.n_layers) +
                                " layers of K and V, have " + std::to_string(k.size()) + "/" +
                                std::to_string(v.size()));
  const size_t want = num_tokens() * shape.kv_dim();
  for (int l = 0; l < shape.n_layers; ++l)
    if (k[l].size() != want || v[l].size() != want)
      throw std::invalid_argument("KvCache: layer " + std::to_string(l) + " holds " +
                                  std::to_string(k[l].size()) + "/" + std::to_string(v[l].size()) +
                                  " values, expected " + std::to_string(want));
}

KvCache KvCache::slice(size_t begin, size_t end) const {
  if (begin > end || end > num_tokens())
    throw std::out_of_range("KvCache::slice: [" + std::to_string(begin) + ", " +
                            std::to_string(end) + ") outside " + std::to_string(num_tokens()) +
                            " tokens");
  KvCache out(shape, model_name, rope_theta, keys_pre_rope);
  out.tokens.assign(tokens.begin() + begin, tokens.begin() + end);
  const size_t d = shape.kv_dim();
  for (int l = 0; l < shape.n_layers; ++l) {
    out.k[l].assign(k[l].begin() + begin * d, k[l].begin() + end * d);
    out.v[l].assign(v[l].begin() + begin * d, v[l].begin() + end * d);
  }
  return out;
}

void KvCache::append(const KvCache& other) {
  if (!(other.shape == shape)) throw std::invalid_argument("KvCache::append: shape mismatch");
  if (other.keys_pre_rope != keys_pre_rope)
    throw std::invalid_argument("KvCache::append: pre-RoPE and post-RoPE keys cannot be mixed");
  tokens.insert(tokens.end(), other.tokens.begin(), other.tokens.end());
  for (int l = 0; l < shape.n_layers; ++l) {
    k[l].insert(k[l].end(), other.k[l].begin(), other.k[l].end());
    v[l].insert(v[l].end(), other.v[l].begin(), other.v[l].end());
  }
}

}  // namespace kvstream
