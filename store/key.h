// Chunk-chained content keys for token prefixes (AttentionStore / vLLM prefix caching style).
//
// Contract: tokens are cut into chunks of chunk_tokens; key(chunk 0) = H(root, tokens of chunk 0),
// key(chunk i) = H(key(chunk i-1), tokens of chunk i), where root depends on chunk_tokens and a
// domain string (the model name), so caches of different models never share keys. A trailing
// partial chunk is hashed the same way. Hence two token sequences share key(chunk i) exactly when
// (up to 128-bit hash collisions) they share their first (i+1) * chunk_tokens tokens, and a longer
// conversation's boundary keys contain every full-chunk key of the shorter one it extends.
// H is keyed: HMAC-SHA256 under a secret (the deployment's, per tenant: tenant_secret()),
// truncated to 128 bits (docs/PROTOCOL.md, "Authentication, tenants and TLS"), so that nobody
// without the secret can compute the key of a prefix from its text. An empty secret is the public
// all-zero key (tests, simulations, an insecure sender). The store verifies the tokens of a hit,
// so a collision costs a miss, never wrong data.
#pragma once
#include <compare>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kvstream::store {

struct PrefixKey {
  uint64_t hi = 0, lo = 0;
  auto operator<=>(const PrefixKey&) const = default;
  std::string hex() const;  // 32 lowercase hex digits
  // Parses hex(); throws std::invalid_argument on anything else.
  static PrefixKey from_hex(std::string_view s);
};

struct PrefixKeyHash {
  size_t operator()(const PrefixKey& k) const noexcept { return static_cast<size_t>(k.lo ^ (k.hi * 0x9e3779b97f4a7c15ull)); }
};

class PrefixHasher {
 public:
  // chunk_tokens must be positive (std::invalid_argument).
  explicit PrefixHasher(int chunk_tokens = 64, std::string_view domain = {}, std::span<const uint8_t> secret = {});
  int chunk_tokens() const { return chunk_tokens_; }
  PrefixKey root() const { return root_; }
  PrefixKey extend(const PrefixKey& prev, std::span<const int32_t> chunk) const;
  // keys[i] = key of the first min((i+1)*chunk_tokens, n) tokens: one per chunk, the last one
  // covering a partial tail when n is not a multiple of chunk_tokens. Empty for no tokens.
  std::vector<PrefixKey> chain(std::span<const int32_t> tokens) const;
  // The key of the whole sequence (chain().back(), or root() for no tokens).
  PrefixKey key_of(std::span<const int32_t> tokens) const;

 private:
  int chunk_tokens_;
  std::vector<uint8_t> secret_;
  PrefixKey root_;
};

// Tenant T's key secret under a deployment secret: HMAC-SHA256(deployment, "tenant" || T), so one
// text has unrelated keys in different tenants. An empty tenant returns the deployment secret.
std::vector<uint8_t> tenant_secret(std::span<const uint8_t> deployment, const std::string& tenant);

}  // namespace kvstream::store
