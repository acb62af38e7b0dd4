// .kvs container and profile file: round trips, independence of (chunk, level), corruption.
#include <catch2/catch.hpp>

#include <random>

#include "codec/container.h"
#include "codec/rope.h"
#include "codec_fixture.h"
#include "tests/codec/blob_crc.h"

using namespace kvstream;
using namespace kvstream::codec;
using kvstream::testing::real_kv;
using kvstream::testing::test_profile;

TEST_CASE("profile serialises, parses back identically and rejects corruption", "[codec][profile]") {
  const Profile& p = test_profile();
  const auto bytes = serialize_profile(p);
  const Profile q = parse_profile(bytes);
  CHECK(serialize_profile(q) == bytes);
  CHECK(q.hash() == p.hash());
  CHECK(q.level_index("coarse") == 2);
  CHECK_THROWS_AS(q.level_index("nope"), std::invalid_argument);
  std::mt19937 rng(5);
  for (int i = 0; i < 300; ++i) {
    auto b = bytes;
    b[rng() % b.size()] ^= uint8_t(1 + rng() % 255);
    CHECK_THROWS_AS(parse_profile(b), std::runtime_error);
  }
  for (size_t n : {size_t(0), size_t(10), size_t(100), bytes.size() / 2, bytes.size() - 1}) {
    std::vector<uint8_t> b(bytes.begin(), bytes.begin() + ptrdiff_t(n));
    CHECK_THROWS_AS(parse_profile(b), std::runtime_error);
  }
  // A table whose frequencies do not sum to 2^scale_bits, behind a valid CRC.
  auto b = bytes;
  b[b.size() - 6] += 1;  // last freq of the last table
  kvstream::testing::reseal(b);
  CHECK_THROWS_WITH(parse_profile(b), Catch::Contains("rANS table"));
}

TEST_CASE("container round trip: every chunk and level decodes on its own", "[codec][container]") {
  const KvCache& kv = real_kv();
  const Profile& p = test_profile();
  auto ladder = default_ladder(p);
  add_baselines(ladder);
  const auto bytes = encode_container(kv, p, ladder, 48, {}, 2);
  CHECK(bytes == encode_container(kv, p, ladder, 48, {}, 1));  // thread count does not matter
  const auto r = ContainerReader::parse(bytes);
  const auto& info = r.info();
  CHECK(info.num_chunks == 3);  // 48 + 48 + 32 tokens
  CHECK(info.ladder.back().name == "text");
  CHECK(info.profile_hash == p.hash());
  // Whole-range decode of each level equals the per-chunk decodes stitched together.
  for (int level = 0; level + 1 < int(info.ladder.size()); ++level) {
    const KvCache all = decode_container(r, &p, level, 0, info.num_chunks, false, 2);
    CHECK(all.tokens == kv.tokens);
    for (uint32_t c = 0; c < info.num_chunks; ++c) {
      const KvCache part = decode_container(r, &p, level, c, c + 1, false, 1);
      REQUIRE(part.num_tokens() == info.chunk_end(c) - info.chunk_begin(c));
      for (int l = 0; l < kv.shape.n_layers; ++l)
        CHECK(std::equal(part.k[l].begin(), part.k[l].end(), all.k[l].begin() + info.chunk_begin(c) * 32));
    }
  }
  CHECK(r.tokens(2) == std::vector<int32_t>(kv.tokens.begin() + 96, kv.tokens.end()));
  CHECK_THROWS(decode_container(r, nullptr, 0, 0, 1));   // quant level needs the profile
  CHECK_THROWS(decode_container(r, &p, 0, 2, 4));        // range
  // Ladder JSON survives the trip.
  CHECK(ladder_to_json(info.ladder) == ladder_to_json(ladder));
}

TEST_CASE("container rejects corrupt, truncated and hostile files", "[codec][container][corrupt]") {
  const KvCache& kv = real_kv();
  const Profile& p = test_profile();
  const auto bytes = encode_container(kv.slice(0, 20), p, default_ladder(p), 8, {}, 1);
  auto fails = [&](std::vector<uint8_t> b) {
    try {
      const auto r = ContainerReader::parse(std::move(b));
      for (uint32_t c = 0; c < r.info().num_chunks; ++c) {
        for (int l = 0; l < int(r.info().ladder.size()); ++l) r.blob(c, l);  // CRC-checked
        r.tokens(c);
      }
      return false;
    } catch (const std::exception&) {
      return true;
    }
  };
  REQUIRE_FALSE(fails(bytes));
  for (int l = 0; l < 3; ++l) CHECK(decode_container(ContainerReader::parse(bytes), &p, l, 0, 3).num_tokens() == 20);
  for (size_t i = 0; i < bytes.size(); ++i) {
    auto b = bytes;
    b[i] ^= 0x5A;
    REQUIRE(fails(b));
  }
  for (size_t n = 0; n < bytes.size(); n += 7) REQUIRE(fails(std::vector<uint8_t>(bytes.begin(), bytes.begin() + ptrdiff_t(n))));
  // Another profile: refused by hash.
  Profile other = p;
  other.levels.pop_back();
  const auto r = ContainerReader::parse(bytes);
  CHECK_THROWS_WITH(decode_container(r, &other, 0, 0, 1), Catch::Contains("another profile"));
}
