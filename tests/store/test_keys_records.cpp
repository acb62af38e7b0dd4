// Prefix keys (chunk chaining) and the record format's corruption checks.
#include <catch2/catch.hpp>

#include "store/record.h"
#include "tests/store/store_test_util.h"

using namespace kvstream::store;
using kvstream::store::testing::conversation;

TEST_CASE("chunk-chained keys: an extended conversation shares every full-chunk key", "[store][keys]") {
  PrefixHasher h(16, "stories260K");
  const auto conv = conversation(7, 100);
  const std::vector<int32_t> turn1(conv.begin(), conv.begin() + 40);
  const auto k1 = h.chain(turn1);
  const auto k2 = h.chain(conv);
  REQUIRE(k1.size() == 3);  // 16 + 16 + 8
  REQUIRE(k2.size() == 7);
  CHECK(k1[0] == k2[0]);
  CHECK(k1[1] == k2[1]);
  CHECK(k1[2] != k2[2]);  // partial chunk differs from the full one
  CHECK(h.key_of(turn1) == k1.back());
  // chain[i] == extend(chain[i-1], chunk i)
  CHECK(h.extend(h.extend(h.root(), std::span(conv).first(16)), std::span(conv).subspan(16, 16)) == k2[1]);
  // A different token anywhere changes that chunk's key and every later one, not earlier ones.
  auto other = conv;
  other[20] ^= 1;
  const auto k3 = h.chain(other);
  CHECK(k3[0] == k2[0]);
  for (size_t i = 1; i < k3.size(); ++i) CHECK(k3[i] != k2[i]);
  // The domain (model) and chunk size are part of every key.
  CHECK(PrefixHasher(16, "other-model").key_of(conv) != h.key_of(conv));
  CHECK(PrefixHasher(32, "stories260K").key_of(conv) != h.key_of(conv));
  CHECK_THROWS_AS(PrefixHasher(0), std::invalid_argument);
}

TEST_CASE("prefix key hex round trip and bad input", "[store][keys]") {
  PrefixHasher h(64);
  const auto k = h.key_of(conversation(1, 10));
  CHECK(PrefixKey::from_hex(k.hex()) == k);
  CHECK(k.hex().size() == 32);
  CHECK_THROWS_AS(PrefixKey::from_hex("abc"), std::invalid_argument);
  CHECK_THROWS_AS(PrefixKey::from_hex(std::string(31, '0') + "g"), std::invalid_argument);
}

TEST_CASE("records round-trip and every corruption is detected", "[store][record]") {
  PrefixHasher h(8, "m");
  Record r;
  r.tokens = conversation(3, 21);
  r.key = h.key_of(r.tokens);
  r.payload = kvstream::store::testing::payload_for(r.tokens, 300);
  const auto bytes = serialize_record(r);
  REQUIRE(bytes.size() == r.stored_bytes());
  const Record back = parse_record(bytes, &h);
  CHECK(back.key == r.key);
  CHECK(back.tokens == r.tokens);
  CHECK(back.payload == r.payload);

  // Flip one bit at every offset: each must be rejected (magic, sizes, key, tokens, payload, CRC).
  for (size_t i = 0; i < bytes.size(); ++i) {
    auto bad = bytes;
    bad[i] ^= 0x10;
    CHECK_THROWS_AS(parse_record(bad, &h), CorruptRecord);
  }
  // Truncated or extended buffers.
  for (size_t n : {size_t(0), size_t(10), bytes.size() / 2, bytes.size() - 1}) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + n);
    CHECK_THROWS_AS(parse_record(cut, &h), CorruptRecord);
  }
  auto longer = bytes;
  longer.push_back(0);
  CHECK_THROWS_AS(parse_record(longer, &h), CorruptRecord);
  // A record whose key is not the hash of its tokens (valid CRC) is rejected when a hasher is given.
  Record wrong = r;
  wrong.key = h.key_of(conversation(4, 21));
  const auto wrong_bytes = serialize_record(wrong);
  CHECK_NOTHROW(parse_record(wrong_bytes));
  CHECK_THROWS_AS(parse_record(wrong_bytes, &h), CorruptRecord);
  // A huge declared token count is rejected before any allocation.
  auto huge = bytes;
  huge[8] = huge[9] = huge[10] = 0xff, huge[11] = 0x7f;
  CHECK_THROWS_AS(parse_record(huge, &h), CorruptRecord);
}

TEST_CASE("crc32c check value", "[store][record]") {
  const std::string s = "123456789";
  CHECK(crc32c(std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size())) == 0xE3069283u);
}

TEST_CASE("keyed prefix keys: a secret and a tenant change every key, the chain properties stay", "[store][keys]") {
  const auto conv = conversation(9, 100);
  const std::vector<uint8_t> deployment(32, 0x5c);
  const auto ta = tenant_secret(deployment, "alpha"), tb = tenant_secret(deployment, "beta");
  PrefixHasher pub(16, "m"), a(16, "m", ta), a2(16, "m", ta), b(16, "m", tb);
  CHECK(a.key_of(conv) == a2.key_of(conv));  // deterministic under one secret
  CHECK(a.key_of(conv) != pub.key_of(conv));  // not computable from the text alone
  CHECK(a.key_of(conv) != b.key_of(conv));    // per tenant
  CHECK(ta != tb);
  CHECK(tenant_secret(deployment, "") == deployment);
  const auto ka = a.chain(conv);
  const std::vector<int32_t> turn1(conv.begin(), conv.begin() + 40);
  CHECK(a.chain(turn1)[1] == ka[1]);  // an extended conversation still shares its full-chunk keys
  CHECK(a.extend(a.extend(a.root(), std::span(conv).first(16)), std::span(conv).subspan(16, 16)) == ka[1]);
}
