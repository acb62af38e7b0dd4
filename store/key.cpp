#include "store/key.h"

#include <stdexcept>

namespace kvstream::store {
namespace {

inline uint64_t mix(uint64_t x) {  // splitmix64 finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

PrefixKey absorb(PrefixKey s, uint64_t word) {
  s.hi = mix(s.hi ^ (word + 0x9e3779b97f4a7c15ull));
  s.lo = mix(s.lo + (word ^ 0xc2b2ae3d27d4eb4full) * 0xff51afd7ed558ccdull);
  return s;
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

PrefixHasher::PrefixHasher(int chunk_tokens, std::string_view domain) : chunk_tokens_(chunk_tokens) {
  if (chunk_tokens <= 0) throw std::invalid_argument("PrefixHasher: chunk_tokens must be positive");
  PrefixKey s{0x6b7673746f726521ull, 0x707265666978686bull};  // "kvstore!" "prefixhk"
  s = absorb(s, static_cast<uint64_t>(chunk_tokens));
  for (unsigned char c : domain) s = absorb(s, c);
  s = absorb(s, domain.size());
  root_ = s;
}

PrefixKey PrefixHasher::extend(const PrefixKey& prev, std::span<const int32_t> chunk) const {
  PrefixKey s = absorb(prev, 0xc4u + chunk.size());
  for (int32_t t : chunk) s = absorb(s, static_cast<uint32_t>(t));
  return absorb(s, chunk.size());
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
