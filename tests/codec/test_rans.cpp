// rANS coder: round trips on adversarial distributions, end-state integrity, CRC32C check value.
#include <catch2/catch.hpp>

#include <random>
#include <span>
#include <string>

#include "codec/crc32c.h"
#include "codec/rans.h"

using namespace kvstream::codec;

namespace {

// Encodes syms with table t as one stream and decodes it back.
std::vector<uint32_t> round_trip(const RansTable& t, const std::vector<uint32_t>& syms, size_t* bytes = nullptr) {
  RansEncoder enc;
  for (size_t i = syms.size(); i-- > 0;) enc.put(t.cum[syms[i]], t.freq[syms[i]], t.scale_bits);
  std::vector<uint8_t> data;
  const uint32_t state = enc.finish(data);
  if (bytes) *bytes = data.size() + 4;
  std::vector<uint32_t> slots(1u << t.scale_bits);
  rans_build_slots(t, slots.data());
  RansDecoder d{state, data.data(), data.data() + data.size(), 0};
  std::vector<uint32_t> out;
  for (size_t i = 0; i < syms.size(); ++i) out.push_back(rans_decode_step(d, slots.data(), t.scale_bits));
  REQUIRE(rans_decoder_ok(d));
  return out;
}

}  // namespace

TEST_CASE("crc32c matches the standard check value", "[codec][crc]") {
  const std::string s = "123456789";
  CHECK(crc32c(reinterpret_cast<const uint8_t*>(s.data()), s.size()) == 0xE3069283u);
  // incremental == one shot
  const uint32_t a = crc32c(reinterpret_cast<const uint8_t*>(s.data()), 4);
  CHECK(crc32c(reinterpret_cast<const uint8_t*>(s.data()) + 4, 5, a) == 0xE3069283u);
}

TEST_CASE("rans_normalize keeps every symbol codable and sums to 2^M", "[codec][rans]") {
  std::vector<double> counts = {1e9, 0, 0, 1, 0};
  const auto t = rans_normalize(counts, 12);
  uint32_t sum = 0;
  for (auto f : t.freq) {
    CHECK(f >= 1);
    sum += f;
  }
  CHECK(sum == 4096u);
  CHECK(t.freq[0] == 4092u);
  CHECK_THROWS(rans_normalize(std::vector<double>{1.0}, 12));
  CHECK_THROWS(rans_normalize(std::vector<double>(257, 1.0), 12));
  CHECK_THROWS(rans_normalize(std::vector<double>(300, 1.0), 8));
}

TEST_CASE("rANS round trips adversarial distributions", "[codec][rans]") {
  std::mt19937 rng(7);
  struct Case { std::string name; std::vector<double> counts; int bits; };
  std::vector<Case> cases;
  cases.push_back({"two symbols, extreme skew", {1e9, 1}, 12});
  cases.push_back({"uniform 256", std::vector<double>(256, 1.0), 12});
  cases.push_back({"uniform 256 at 8 bits", std::vector<double>(256, 1.0), 8});
  std::vector<double> geo(200);
  for (size_t i = 0; i < geo.size(); ++i) geo[i] = std::pow(0.5, double(i));
  cases.push_back({"geometric", geo, 12});
  cases.push_back({"one bit scale", {1, 1}, 1});
  for (const auto& c : cases) {
    SECTION(c.name) {
      const auto t = rans_normalize(c.counts, c.bits);
      // Symbols drawn adversarially: mostly the rarest symbols (worst case for state growth), then
      // from the table's own distribution, then all-max-frequency.
      std::vector<uint32_t> syms;
      for (int i = 0; i < 5000; ++i) syms.push_back(uint32_t(t.freq.size() - 1 - (rng() % 2)));
      std::discrete_distribution<uint32_t> dist(t.freq.begin(), t.freq.end());
      for (int i = 0; i < 20000; ++i) syms.push_back(dist(rng));
      for (int i = 0; i < 5000; ++i) syms.push_back(0);
      CHECK(round_trip(t, syms) == syms);
    }
  }
}

TEST_CASE("rANS codes close to the entropy", "[codec][rans]") {
  std::vector<double> counts = {50, 20, 10, 10, 5, 3, 1, 1};
  const auto t = rans_normalize(counts, 12);
  std::mt19937 rng(1);
  std::discrete_distribution<uint32_t> dist(t.freq.begin(), t.freq.end());
  std::vector<uint32_t> syms(100000);
  double ideal = 0;
  for (auto& s : syms) s = dist(rng), ideal -= std::log2(t.freq[s] / 4096.0);
  size_t bytes = 0;
  REQUIRE(round_trip(t, syms, &bytes) == syms);
  CHECK(ideal / (8.0 * bytes) > 0.99);
}

TEST_CASE("rANS decoder flags a truncated or altered stream", "[codec][rans]") {
  const auto t = rans_normalize(std::vector<double>{5, 3, 1, 1}, 12);
  std::vector<uint32_t> syms(3000);
  std::mt19937 rng(3);
  for (auto& s : syms) s = rng() % 4;
  RansEncoder enc;
  for (size_t i = syms.size(); i-- > 0;) enc.put(t.cum[syms[i]], t.freq[syms[i]], t.scale_bits);
  std::vector<uint8_t> data;
  const uint32_t state = enc.finish(data);
  std::vector<uint32_t> slots(4096);
  rans_build_slots(t, slots.data());
  auto run = [&](uint32_t st, std::span<const uint8_t> bytes) {
    RansDecoder d{st, bytes.data(), bytes.data() + bytes.size(), 0};
    for (size_t i = 0; i < syms.size(); ++i) rans_decode_step(d, slots.data(), 12);
    return rans_decoder_ok(d);
  };
  CHECK(run(state, data));
  REQUIRE(data.size() > 2);
  CHECK_FALSE(run(state, std::span<const uint8_t>(data).first(data.size() - 2)));  // two bytes cut
  CHECK_FALSE(run(state ^ 0x100, data));
}
