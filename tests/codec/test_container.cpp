// .kvs container and profile file: round trips, independence of (chunk, level), corruption.
#include <catch2/catch.hpp>

#include <cstring>
#include <functional>
#include <random>

#include "codec/crc32c.h"

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

// A profile header claiming 1024 x 1024 x 1024 (each field in range) has 2^31 lanes: counted in
// 64 bits and refused by the file size (an int count overflowed before the size check).
TEST_CASE("profile shapes are bounded by the file size, products included", "[codec][profile][corrupt]") {
  const auto bytes = serialize_profile(test_profile());
  uint32_t jlen;
  std::memcpy(&jlen, bytes.data() + 12, 4);
  auto j = nlohmann::json::parse(bytes.begin() + 16, bytes.begin() + 16 + jlen);
  auto with = [&](const std::function<void(nlohmann::json&)>& edit) {
    auto h = j;
    edit(h);
    const std::string js = h.dump();
    std::vector<uint8_t> b(bytes.begin(), bytes.begin() + 12);
    const uint32_t n = uint32_t(js.size());
    b.insert(b.end(), reinterpret_cast<const uint8_t*>(&n), reinterpret_cast<const uint8_t*>(&n) + 4);
    b.insert(b.end(), js.begin(), js.end());
    b.insert(b.end(), bytes.begin() + 16 + jlen, bytes.end());
    kvstream::testing::reseal(b);
    return b;
  };
  REQUIRE_NOTHROW(parse_profile(with([](nlohmann::json&) {})));
  CHECK_THROWS_AS(parse_profile(with([](nlohmann::json& h) { h["n_layers"] = h["n_kv_heads"] = h["head_dim"] = 1024; })),
                  CorruptBlob);
  CHECK_THROWS_AS(parse_profile(with([](nlohmann::json& h) { h["n_layers"] = 5.5; })), CorruptBlob);
  CHECK_THROWS_AS(parse_profile(with([](nlohmann::json& h) { h["levels"][0]["k_step"] = 1e300; })), CorruptBlob);
  CHECK_THROWS_AS(parse_profile(with([](nlohmann::json& h) { h["levels"][0]["quality"]["contexts"] = 1e300; })),
                  CorruptBlob);
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

namespace {

// The container with its JSON header replaced by edit(header) and the header CRC re-sealed (the
// index and the blobs are unchanged): what a hostile file with valid checksums looks like.
std::vector<uint8_t> with_header(const std::vector<uint8_t>& kvs, const std::function<void(nlohmann::json&)>& edit) {
  uint32_t jlen;
  std::memcpy(&jlen, kvs.data() + 12, 4);
  auto j = nlohmann::json::parse(kvs.begin() + 16, kvs.begin() + 16 + jlen);
  edit(j);
  const std::string js = j.dump();
  std::vector<uint8_t> out(kvs.begin(), kvs.begin() + 12);
  const uint32_t n = uint32_t(js.size());
  out.insert(out.end(), reinterpret_cast<const uint8_t*>(&n), reinterpret_cast<const uint8_t*>(&n) + 4);
  out.insert(out.end(), js.begin(), js.end());
  const uint32_t crc = crc32c(out.data(), out.size());
  out.insert(out.end(), reinterpret_cast<const uint8_t*>(&crc), reinterpret_cast<const uint8_t*>(&crc) + 4);
  out.insert(out.end(), kvs.begin() + 16 + jlen + 4, kvs.end());
  return out;
}

}  // namespace

// Finding 4 of issue 13: a small file with valid CRCs whose header claims a huge shape made
// tokens() (the sender's manifest) and decode_container() allocate the claimed cache (~256 GiB).
TEST_CASE("container shapes are bounded by the file size, products included", "[codec][container][corrupt]") {
  const Profile& p = test_profile();
  auto ladder = default_ladder(p);
  add_baselines(ladder);
  const auto bytes = encode_container(real_kv().slice(0, 16), p, ladder, 8, {}, 1);
  REQUIRE_NOTHROW(ContainerReader::parse(bytes));
  // Each field is within its own bound; their product is not within the file's.
  const auto huge = with_header(bytes, [](nlohmann::json& j) {
    j["n_layers"] = 65535, j["n_kv_heads"] = 8, j["head_dim"] = 1024;
  });
  REQUIRE_THROWS_AS(ContainerReader::parse(huge), CorruptBlob);
  CHECK_THROWS_WITH(ContainerReader::parse(huge), Catch::Contains("the least its method needs"));
  // Also when only the text level is kept: the text blobs bound the token count.
  const auto tokens = with_header(bytes, [](nlohmann::json& j) { j["num_tokens"] = 1u << 31, j["num_chunks"] = (1u << 28); });
  CHECK_THROWS_AS(ContainerReader::parse(tokens), CorruptBlob);
  // Floats, negative numbers and ladders without a final text level are refused, not converted.
  CHECK_THROWS_AS(ContainerReader::parse(with_header(bytes, [](nlohmann::json& j) { j["n_layers"] = 5.0; })), CorruptBlob);
  CHECK_THROWS_AS(ContainerReader::parse(with_header(bytes, [](nlohmann::json& j) { j["head_dim"] = -8; })), CorruptBlob);
  CHECK_THROWS_AS(ContainerReader::parse(with_header(bytes, [](nlohmann::json& j) { j["rope_theta"] = 1e300; })), CorruptBlob);
  CHECK_THROWS_AS(ContainerReader::parse(with_header(bytes, [](nlohmann::json& j) {
                    std::swap(j["ladder"][0], j["ladder"][j["ladder"].size() - 1]);
                  })), CorruptBlob);
  CHECK_THROWS_AS(ContainerReader::parse(with_header(bytes, [](nlohmann::json& j) {
                    j["ladder"][0]["contexts"] = 1e300;
                  })), CorruptBlob);
}

TEST_CASE("token ids come from the text blobs alone", "[codec][container]") {
  const Profile& p = test_profile();
  const KvCache kv = real_kv().slice(0, 20);
  auto bytes = encode_container(kv, p, default_ladder(p), 8, {}, 1);
  const auto r0 = ContainerReader::parse(bytes);
  const auto& info = r0.info();
  // Corrupt every KV blob (their CRCs no longer match); the text blobs still give every id.
  size_t blobs = 0;
  for (uint32_t c = 0; c < info.num_chunks; ++c)
    for (int l = 0; l <= r0.text_level(); ++l) blobs += r0.blob_size(c, l);
  const size_t start = bytes.size() - blobs;
  const uint8_t* base = r0.blob(0, 0).data();
  for (uint32_t c = 0; c < info.num_chunks; ++c)
    for (int l = 0; l < r0.text_level(); ++l) bytes[start + size_t(r0.blob(c, l).data() - base) + 30] ^= 0xFF;
  const auto r = ContainerReader::parse(bytes);
  std::vector<int32_t> all;
  for (uint32_t c = 0; c < info.num_chunks; ++c) {
    CHECK_THROWS_AS(r.blob(c, 0), CorruptBlob);
    const auto ids = r.tokens(c);
    all.insert(all.end(), ids.begin(), ids.end());
  }
  CHECK(all == kv.tokens);
  CHECK(r.text_level() == int(info.ladder.size()) - 1);
}
