#include "store/key.h"

#include <cstring>
#include <stdexcept>

#include "streamer/auth.h"

namespace kvstream::store {
namespace {

void put_u32(std::vector<uint8_t>& m, uint32_t v) {
  for (int i = 0; i < 4; ++i) m.push_back(uint8_t(v >> (8 * i)));
}
void put_u64(std::vector<uint8_t>& m, uint64_t v) {
  for (int i = 0; i < 8; ++i) m.push_back(uint8_t(v >> (8 * i)));
}

// The first 128 bits of HMAC-SHA256(secret, message), as (hi, lo) big-endian words.
PrefixKey keyed_hash(const std::vector<uint8_t>& secret, const std::vector<uint8_t>& message) {
  const auto mac = streamer::hmac_sha256(secret, message);
  PrefixKey k;
  for (int i = 0; i < 8; ++i) {
    k.hi = (k.hi << 8) | mac[size_t(i)];
    k.lo = (k.lo << 8) | mac[size_t(8 + i)];
  }
  return k;
}

}  // namespace

std::string PrefixKey::hex() const {
  static const char* digits = "0123456789abcdef";
  std::string out(32, '0');
  for (int i = 0; i < 16; ++i) {
    out[i] = digits[(hi >> (60 - 4 * i)) & 15];
    out[16 + i] = digits[(lo >> (60 - 4 * i)) & 15];
  }
  return out;
}

PrefixKey PrefixKey::from_hex(std::string_view s) {
  if (s.size() != 32) throw std::invalid_argument("prefix key must be 32 hex digits");
  PrefixKey k;
  for (int i = 0; i < 32; ++i) {
    const char c = s[i];
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else throw std::invalid_argument("prefix key: not a hex digit in '" + std::string(s) + "'");
    uint64_t& w = i < 16 ? k.hi : k.lo;
    w = (w << 4) | static_cast<uint64_t>(d);
  }
  return k;
}

PrefixHasher::PrefixHasher(int chunk_tokens, std::string_view domain, std::span<const uint8_t> secret)
    : chunk_tokens_(chunk_tokens), secret_(secret.begin(), secret.end()) {
  if (chunk_tokens <= 0) throw std::invalid_argument("PrefixHasher: chunk_tokens must be positive");
  std::vector<uint8_t> m;
  const char* label = "kvstream prefix key v2 root";
  m.insert(m.end(), label, label + std::strlen(label));
  put_u32(m, uint32_t(chunk_tokens));
  put_u64(m, domain.size());
  m.insert(m.end(), domain.begin(), domain.end());
  root_ = keyed_hash(secret_, m);
}

PrefixKey PrefixHasher::extend(const PrefixKey& prev, std::span<const int32_t> chunk) const {
  std::vector<uint8_t> m;
  m.reserve(24 + 4 * chunk.size());
  m.push_back('c');
  put_u64(m, prev.hi);
  put_u64(m, prev.lo);
  put_u32(m, uint32_t(chunk.size()));
  for (int32_t t : chunk) put_u32(m, static_cast<uint32_t>(t));
  return keyed_hash(secret_, m);
}

std::vector<uint8_t> tenant_secret(std::span<const uint8_t> deployment, const std::string& tenant) {
  if (tenant.empty()) return {deployment.begin(), deployment.end()};
  std::vector<uint8_t> m = {'t', 'e', 'n', 'a', 'n', 't'};
  m.insert(m.end(), tenant.begin(), tenant.end());
  const auto mac = streamer::hmac_sha256(deployment, m);
  return {mac.begin(), mac.end()};
}

std::vector<PrefixKey> PrefixHasher::chain(std::span<const int32_t> tokens) const {
  std::vector<PrefixKey> keys;
  keys.reserve(tokens.size() / chunk_tokens_ + 1);
  PrefixKey k = root_;
  for (size_t at = 0; at < tokens.size(); at += chunk_tokens_) {
    const size_t n = std::min<size_t>(chunk_tokens_, tokens.size() - at);
    k = extend(k, tokens.subspan(at, n));
    keys.push_back(k);
  }
  return keys;
}

PrefixKey PrefixHasher::key_of(std::span<const int32_t> tokens) const {
  auto keys = chain(tokens);
  return keys.empty() ? root_ : keys.back();
}

}  // namespace kvstream::store
