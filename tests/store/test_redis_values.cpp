// The Redis tier's pure parts (no server): key -> slot, the value frame and the context meta
// (every corruption detected, nothing read out of bounds), and redis:// URIs.
#include <catch2/catch.hpp>

#include "store/redis_slot.h"
#include "store/redis_tier.h"
#include "store/redis_value.h"

using namespace kvstream;
using namespace kvstream::store;
using namespace kvstream::store::redis;

TEST_CASE("hash slots: CRC16/XMODEM mod 16384 over the hash tag", "[store][redis]") {
  CHECK(crc16("123456789") == 0x31C3);  // the CRC-16/XMODEM check value
  // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
  CHECK(key_slot("foo") == 12182);
  CHECK(key_slot("bar") == 5061);
  CHECK(key_slot("{user1000}.following") == key_slot("{user1000}.followers"));
  CHECK(key_slot("{user1000}.following") == key_slot("user1000"));
  CHECK(hash_tag("foo{}{bar}") == "foo{}{bar}");  // an empty first tag: the whole key
  CHECK(hash_tag("foo{{bar}}zap") == "{bar");
  CHECK(hash_tag("foo{bar}{zap}") == "bar");
  CHECK(hash_tag("foo{bar") == "foo{bar");
}

TEST_CASE("a Redis value says what it is and fails every check it should", "[store][redis]") {
  const PrefixKey key{0x0123456789abcdefull, 0xfedcba9876543210ull};
  const std::vector<uint8_t> payload = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  const ValueId id{ValueKind::kBlob, key, 77, 3, 2};
  const std::string v = encode_value(id, payload);
  REQUIRE(v.size() == payload.size() + kValueOverhead);
  ValueId got;
  const auto p = decode_value(v, id, &got);
  CHECK(std::vector<uint8_t>(p.begin(), p.end()) == payload);
  CHECK(got.generation == 77);
  CHECK(decode_value(v, ValueId{ValueKind::kBlob, key, 0, 3, 2}).size() == payload.size());  // any generation

  // Every flipped byte is detected.
  for (size_t i = 0; i < v.size(); ++i) {
    std::string bad = v;
    bad[i] = char(bad[i] ^ 0x20);
    CHECK_THROWS_AS(decode_value(bad, id), CorruptValue);
  }
  // Every truncation and an extension too.
  for (size_t n = 0; n < v.size(); ++n) CHECK_THROWS_AS(decode_value(v.substr(0, n), id), CorruptValue);
  CHECK_THROWS_AS(decode_value(v + "x", id), CorruptValue);
  // A value read under another identity: another key, chunk, level or kind.
  CHECK_THROWS_AS(decode_value(v, ValueId{ValueKind::kBlob, PrefixKey{1, 2}, 77, 3, 2}), CorruptValue);
  CHECK_THROWS_AS(decode_value(v, ValueId{ValueKind::kBlob, key, 77, 4, 2}), CorruptValue);
  CHECK_THROWS_AS(decode_value(v, ValueId{ValueKind::kBlob, key, 77, 3, 1}), CorruptValue);
  CHECK_THROWS_AS(decode_value(v, ValueId{ValueKind::kMeta, key, 77, 3, 2}), CorruptValue);
  // Another generation of the same context is stale, not corrupt.
  CHECK_THROWS_AS(decode_value(v, ValueId{ValueKind::kBlob, key, 78, 3, 2}), StaleValue);
  try {
    decode_value(v, ValueId{ValueKind::kBlob, key, 78, 3, 2});
  } catch (const kvstream::Error& e) {
    CHECK(e.code() == ErrorCode::kCorrupt);
  }
}

namespace {
ContextMeta sample_meta() {
  ContextMeta m;
  m.layout = Layout::kContext;
  m.text_level = 2;
  m.ladder_levels = 3;
  m.stored_bytes = 12345;
  auto& man = m.manifest;
  man.profile_hash = "00112233aabbccdd";
  man.num_tokens = 5;
  man.levels = {{0, "fine", 0.99, 0.1}, {1, "coarse", 0.9, 1.5}};
  man.chunks = {{0, 3, 4, {100, 50}}, {3, 2, 3, {80, 40}}};
  man.token_ids = {1, 2, 3, 4, 5};
  m.container_head = {9, 9, 9};
  m.text_blobs = {{1, 2, 3, 4}, {5, 6, 7}};
  return m;
}
}  // namespace

TEST_CASE("the context meta round-trips and rejects inconsistent or truncated bytes", "[store][redis]") {
  const ContextMeta m = sample_meta();
  const auto bytes = encode_meta(m);
  const ContextMeta back = decode_meta(bytes);
  CHECK(back.layout == Layout::kContext);
  CHECK(back.text_level == 2);
  CHECK(back.ladder_levels == 3);
  CHECK(back.stored_bytes == 12345);
  CHECK(back.manifest.profile_hash == m.manifest.profile_hash);
  CHECK(back.manifest.token_ids == m.manifest.token_ids);
  REQUIRE(back.manifest.levels.size() == 2);
  CHECK(back.manifest.levels[1].name == "coarse");
  CHECK(back.manifest.levels[1].agreement == 0.9);
  REQUIRE(back.manifest.chunks.size() == 2);
  CHECK(back.manifest.chunks[1].level_bytes == std::vector<uint32_t>{80, 40});
  CHECK(back.container_head == m.container_head);
  CHECK(back.text_blobs == m.text_blobs);
  for (size_t n = 0; n < bytes.size(); ++n)
    CHECK_THROWS_AS(decode_meta(std::span(bytes).first(n)), CorruptValue);
  auto bad = m;
  bad.manifest.chunks[1].token_begin = 4;  // a gap
  CHECK_THROWS_AS(decode_meta(encode_meta(bad)), CorruptValue);
  bad = m;
  bad.text_blobs[0].push_back(0);  // disagrees with the manifest's text size
  CHECK_THROWS_AS(decode_meta(encode_meta(bad)), CorruptValue);
  bad = m;
  bad.manifest.levels[0].id = 2;  // the text level is not a KV level
  CHECK_THROWS_AS(decode_meta(encode_meta(bad)), CorruptValue);
}

TEST_CASE("redis:// URIs: seeds, tenant, parameters, and anything else is refused", "[store][redis]") {
  const auto o = parse_redis_uri("redis://127.0.0.1:7000,10.0.0.2:7001/tenant-a?layout=context&wait=2&read_ms=250");
  REQUIRE(o.cluster.seeds.size() == 2);
  CHECK(o.cluster.seeds[1].host == "10.0.0.2");
  CHECK(o.cluster.seeds[1].port == 7001);
  CHECK(o.tenant == "tenant-a");
  CHECK(o.layout == Layout::kContext);
  CHECK(o.wait_replicas == 2);
  CHECK(o.read_budget_s == Approx(0.25));
  const auto d = parse_redis_uri("redis://h:1");
  CHECK(d.tenant == "default");
  CHECK(d.layout == Layout::kChunk);
  CHECK(d.wait_replicas == 1);
  CHECK(is_redis_uri("redis://x:1"));
  CHECK_FALSE(is_redis_uri("/var/store"));
  for (const char* bad : {"redis://", "redis://host", "redis://h:0", "redis://h:1/", "redis://h:1/a:b",
                          "redis://h:1/{x}", "redis://h:1?layout=row", "redis://h:1?nope=1", "redis://h:1?wait=-1",
                          "http://h:1"}) {
    INFO(bad);
    try {
      parse_redis_uri(bad);
      FAIL("accepted");
    } catch (const kvstream::Error& e) {
      CHECK(e.code() == ErrorCode::kInvalidArgument);
    }
  }
}
