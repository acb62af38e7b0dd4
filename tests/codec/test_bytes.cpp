// ByteReader's varint (codec/bytes.h): the inline path (one- and two-byte varints with 2 bytes
// left) and the checked one read the same values and reject the same inputs.
#include <catch2/catch.hpp>

#include <random>
#include <vector>

#include "codec/bytes.h"
#include "codec/chunk_codec.h"

using namespace kvstream::codec;

namespace {

// Reads one varint from `bytes`, followed by `pad` extra bytes (pad 0: a one-byte varint takes the
// checked path; pad > 0: one- and two-byte varints take the inline one).
// Returns the value and how many bytes it took; throws CorruptBlob like the reader.
std::pair<uint64_t, size_t> read_one(std::vector<uint8_t> bytes, size_t pad) {
  bytes.resize(bytes.size() + pad, 0xFF);
  ByteReader<CorruptBlob> r{bytes, 0, "test"};
  const uint64_t v = r.varint("v");
  return {v, r.pos};
}

std::vector<uint8_t> encoded(uint64_t v) {
  std::vector<uint8_t> out;
  ByteWriter{out}.varint(v);
  return out;
}

}  // namespace

TEST_CASE("varint: both read paths give back every written value and its length") {
  std::vector<uint64_t> values = {0, 1, 127, 128, 300, ~uint64_t(0), uint64_t(1) << 63};
  for (int k = 1; k < 10; ++k) values.push_back((uint64_t(1) << (7 * k)) - 1), values.push_back(uint64_t(1) << (7 * k));
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) values.push_back(rng() >> (rng() % 64));
  for (const uint64_t v : values) {
    const auto b = encoded(v);
    for (size_t pad : {size_t(0), size_t(3), size_t(10)}) {
      const auto [got, used] = read_one(b, pad);
      REQUIRE(got == v);
      REQUIRE(used == b.size());
    }
  }
}

TEST_CASE("varint: both read paths reject an overflowing, an over-long and a truncated varint") {
  std::vector<uint8_t> overflow(9, 0x80);
  overflow.push_back(0x02);  // bit 64
  std::vector<uint8_t> too_long(10, 0x80);
  too_long.push_back(0x00);
  const std::vector<uint8_t> truncated = {0x80, 0x80};
  for (size_t pad : {size_t(0), size_t(10)}) {
    REQUIRE_THROWS_WITH(read_one(overflow, pad), Catch::Contains("varint overflow"));
    REQUIRE_THROWS_AS(read_one(too_long, pad), CorruptBlob);  // its 10th byte carries bit 64 and more
  }
  REQUIRE_THROWS_WITH(read_one(truncated, 0), Catch::Contains("truncated"));
}
