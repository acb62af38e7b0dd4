// KV cache safetensors files and the fp16/bf16 conversions behind them: exact round trips,
// round-to-nearest-even conversions (checked against the compiler's _Float16 and bit-level rules),
// and malformed files rejected with clear messages.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>

#include "codec/half.h"
#include "codec/safetensors.h"
#include "tests/test_data.h"

using namespace kvstream;

namespace {
KvCache synthetic_kv(size_t tokens, bool pre_rope = false) {
  KvCache kv(KvShape{5, 4, 8}, "stories260K", 10000.0f, pre_rope);
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  for (size_t t = 0; t < tokens; ++t) kv.tokens.push_back(int32_t(rng() % 512));
  for (int l = 0; l < 5; ++l) {
    for (size_t i = 0; i < tokens * 32; ++i) kv.k[l].push_back(nd(rng));
    for (size_t i = 0; i < tokens * 32; ++i) kv.v[l].push_back(nd(rng) * 0.1f);
  }
  return kv;
}
// A file from an explicit header JSON and data section.
std::vector<uint8_t> make_file(const std::string& header, size_t data_bytes, uint64_t claimed = UINT64_MAX) {
  std::vector<uint8_t> out(8 + header.size() + data_bytes, 0);
  const uint64_t n = claimed == UINT64_MAX ? header.size() : claimed;
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, header.data(), header.size());
  return out;
}
// A valid one-layer, two-token F32 header; tests break one thing at a time.
nlohmann::json good_header() {
  return nlohmann::json::parse(R"({
    "__metadata__": {"model": "toy", "rope_theta": "10000", "keys_pre_rope": "false", "head_dim": "2"},
    "k.0": {"dtype": "F32", "shape": [2, 1, 2], "data_offsets": [0, 16]},
    "v.0": {"dtype": "F32", "shape": [2, 1, 2], "data_offsets": [16, 32]},
    "tokens": {"dtype": "I32", "shape": [2], "data_offsets": [32, 40]}})");
}
std::string error_of(const std::vector<uint8_t>& f) {
  try {
    kv_from_safetensors(f.data(), f.size(), "bad.safetensors");
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(accepted)";
}
std::string error_of(const nlohmann::json& h, size_t data = 40) { return error_of(make_file(h.dump(), data)); }
}  // namespace

TEST_CASE("f16 conversions are exact and round to nearest even", "[codec][half]") {
  // Every finite half survives half -> float -> half; NaNs stay NaN.
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_f32(uint16_t(h));
    if (std::isnan(f)) {
      CHECK(std::isnan(f16_to_f32(f32_to_f16(f))));
      continue;
    }
    REQUIRE(f32_to_f16(f) == h);
    REQUIRE(float(std::bit_cast<_Float16>(uint16_t(h))) == f);  // decode agrees with the compiler
  }
  CHECK(f32_to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);                          // tie -> even (1.0)
  CHECK(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3C02);                      // tie -> even (up)
  CHECK(f32_to_f16(65504.0f) == 0x7BFF);
  CHECK(f32_to_f16(65519.996f) == 0x7BFF);
  CHECK(f32_to_f16(65520.0f) == 0x7C00);  // rounds to infinity
  CHECK(f32_to_f16(-1e10f) == 0xFC00);
  CHECK(f32_to_f16(std::ldexp(1.0f, -24)) == 0x0001);  // smallest subnormal
  CHECK(f32_to_f16(std::ldexp(1.0f, -25)) == 0x0000);  // tie -> even (zero)
  CHECK(f32_to_f16(std::ldexp(1.5f, -25)) == 0x0001);
  CHECK(f32_to_f16(std::ldexp(3.0f, -25)) == 0x0002);  // 1.5 units: tie -> even (2)
  CHECK(f32_to_f16(-0.0f) == 0x8000);
  CHECK(f32_to_f16(std::numeric_limits<float>::infinity()) == 0x7C00);
  // Random floats over the whole range agree with the compiler's own RNE conversion.
  std::mt19937 rng(1);
  for (int i = 0; i < 200000; ++i) {
    const float f = std::bit_cast<float>(uint32_t(rng()));
    if (std::isnan(f)) continue;
    REQUIRE(f32_to_f16(f) == std::bit_cast<uint16_t>(static_cast<_Float16>(f)));
  }
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (int i = 0; i < 100000; ++i) {
    const float f = nd(rng) * std::ldexp(1.0f, int(rng() % 40) - 30);
    REQUIRE(f32_to_f16(f) == std::bit_cast<uint16_t>(static_cast<_Float16>(f)));
  }
}

TEST_CASE("bf16 conversions are exact and round to nearest even", "[codec][half]") {
  for (uint32_t b = 0; b < 65536; ++b) {
    const float f = bf16_to_f32(uint16_t(b));
    if (std::isnan(f)) {
      CHECK(std::isnan(bf16_to_f32(f32_to_bf16(f))));
      continue;
    }
    REQUIRE(f32_to_bf16(f) == b);
  }
  CHECK(f32_to_bf16(std::bit_cast<float>(0x3F808000u)) == 0x3F80);  // tie -> even (down)
  CHECK(f32_to_bf16(std::bit_cast<float>(0x3F818000u)) == 0x3F82);  // tie -> even (up)
  CHECK(f32_to_bf16(std::bit_cast<float>(0x3F808001u)) == 0x3F81);  // above the tie
  CHECK(f32_to_bf16(std::bit_cast<float>(0x7F7FFFFFu)) == 0x7F80);  // FLT_MAX rounds to inf
  CHECK(std::isnan(bf16_to_f32(f32_to_bf16(std::bit_cast<float>(0x7F800001u)))));  // NaN kept
  // Against the definition: the nearer of the two neighbours, even on ties.
  std::mt19937 rng(3);
  for (int i = 0; i < 200000; ++i) {
    const uint32_t x = uint32_t(rng()) % 0x7F7F0000u;  // finite, positive, rounding stays finite
    const uint32_t lo = x & 0xFFFF0000u, hi = lo + 0x10000u;
    const double d = std::bit_cast<float>(x), dl = std::bit_cast<float>(lo), dh = std::bit_cast<float>(hi);
    uint32_t want = (d - dl < dh - d) ? lo : (d - dl > dh - d) ? hi : ((lo >> 16) & 1 ? hi : lo);
    REQUIRE(f32_to_bf16(std::bit_cast<float>(x)) == uint16_t(want >> 16));
  }
}

TEST_CASE("KV caches round-trip through safetensors in F32, F16 and BF16", "[codec][safetensors]") {
  const KvCache kv = synthetic_kv(37, true);
  SECTION("F32 is exact") {
    const auto bytes = kv_to_safetensors(kv, Dtype::F32);
    CHECK(bytes.size() % 8 == (37 * 4) % 8);  // header padded to 8 bytes; data follows
    const KvCache back = kv_from_safetensors(bytes.data(), bytes.size());
    CHECK(back.shape == kv.shape);
    CHECK(back.tokens == kv.tokens);
    CHECK(back.k == kv.k);
    CHECK(back.v == kv.v);
    CHECK(back.model_name == "stories260K");
    CHECK(back.rope_theta == 10000.0f);
    CHECK(back.keys_pre_rope);
  }
  for (Dtype dt : {Dtype::F16, Dtype::BF16}) {
    DYNAMIC_SECTION("lossy " << dtype_name(dt)) {
      const auto bytes = kv_to_safetensors(kv, dt);
      const KvCache back = kv_from_safetensors(bytes.data(), bytes.size());
      for (int l = 0; l < 5; ++l)
        for (size_t i = 0; i < kv.k[l].size(); ++i) {
          const float k = kv.k[l][i], v = kv.v[l][i];
          REQUIRE(back.k[l][i] == (dt == Dtype::F16 ? f16_to_f32(f32_to_f16(k)) : bf16_to_f32(f32_to_bf16(k))));
          REQUIRE(back.v[l][i] == (dt == Dtype::F16 ? f16_to_f32(f32_to_f16(v)) : bf16_to_f32(f32_to_bf16(v))));
        }
      CHECK(back.tokens == kv.tokens);
      // Re-encoding the decoded values is lossless.
      CHECK(kv_to_safetensors(back, dt) == bytes);
    }
  }
  SECTION("file I/O, inspection and an empty cache") {
    const auto dir = std::filesystem::temp_directory_path() / ("kvstream_st_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const std::string path = (dir / "kv.safetensors").string();
    write_safetensors(path, kv, Dtype::BF16);
    const SafetensorsInfo info = inspect_safetensors(path);
    CHECK(info.num_tokens == 37);
    CHECK(info.shape == kv.shape);
    CHECK(info.dtype == "BF16");
    CHECK(info.keys_pre_rope);
    CHECK(info.file_bytes == std::filesystem::file_size(path));
    CHECK(info.file_bytes == 8 + info.header_bytes + 37 * (2 * 5 * 32 * 2 + 4));
    CHECK(read_safetensors(path).tokens == kv.tokens);
    const KvCache empty(KvShape{5, 4, 8}, "m");
    write_safetensors(path, empty, Dtype::F16);
    const KvCache e2 = read_safetensors(path);
    CHECK(e2.num_tokens() == 0);
    CHECK(e2.shape == empty.shape);
    CHECK_THROWS_WITH(read_safetensors((dir / "missing").string()), Catch::Contains("cannot open"));
    std::filesystem::remove_all(dir);
  }
}

TEST_CASE("golden K/V rows from run.c survive the file format", "[codec][safetensors]") {
  std::ifstream in(kvstream::testing::golden_path());
  REQUIRE(in);
  const auto g = nlohmann::json::parse(in)["kv"];
  KvCache kv(KvShape{5, 4, 8}, "stories260K");
  kv.resize(5);
  kv.tokens = g["prompt_ids"].get<std::vector<int32_t>>();
  for (const auto& e : g["entries"]) {
    const auto key = e["key"].get<std::vector<float>>(), value = e["value"].get<std::vector<float>>();
    std::copy(key.begin(), key.end(), kv.k_row(e["layer"].get<int>(), e["pos"].get<size_t>()));
    std::copy(value.begin(), value.end(), kv.v_row(e["layer"].get<int>(), e["pos"].get<size_t>()));
  }
  const auto bytes = kv_to_safetensors(kv, Dtype::F16);
  const KvCache back = kv_from_safetensors(bytes.data(), bytes.size());
  double worst = 0;
  for (int l = 0; l < 5; ++l)
    for (size_t i = 0; i < kv.k[l].size(); ++i) {
      worst = std::max(worst, double(std::fabs(back.k[l][i] - kv.k[l][i])) / std::max(1.0f, std::fabs(kv.k[l][i])));
      worst = std::max(worst, double(std::fabs(back.v[l][i] - kv.v[l][i])) / std::max(1.0f, std::fabs(kv.v[l][i])));
    }
  CHECK(worst <= std::ldexp(1.0, -11));  // half precision: relative error at most 2^-11
}

TEST_CASE("malformed safetensors files are rejected with clear errors", "[codec][safetensors]") {
  CHECK(error_of(good_header()) == "(accepted)");
  CHECK_THAT(error_of(std::vector<uint8_t>{1, 2, 3}), Catch::Contains("shorter than the 8-byte"));
  CHECK_THAT(error_of(make_file(good_header().dump(), 40, 1ull << 40)), Catch::Contains("64 MiB"));
  CHECK_THAT(error_of(make_file(good_header().dump(), 40, 5000)), Catch::Contains("past the end"));
  CHECK_THAT(error_of(make_file("{\"k.0\": ", 0)), Catch::Contains("not valid JSON"));
  CHECK_THAT(error_of(make_file("[1,2]", 0)), Catch::Contains("not an object"));
  CHECK_THAT(error_of(make_file(std::string(100000, '[') + std::string(100000, ']'), 0)), Catch::Contains("nests deeper"));
  CHECK_THAT(error_of(good_header(), 39), Catch::Contains("beyond the data section"));  // truncated data
  CHECK_THAT(error_of(good_header(), 48), Catch::Contains("trailing bytes"));
  auto h = good_header();
  h["v.0"]["data_offsets"] = {24, 16};
  CHECK_THAT(error_of(h), Catch::Contains("unordered"));
  h = good_header();
  h["v.0"]["data_offsets"] = {8, 24};
  CHECK_THAT(error_of(h), Catch::Contains("overlaps"));
  h = good_header();
  h["k.0"]["data_offsets"] = {8, 24};
  h["v.0"]["data_offsets"] = {24, 40};
  h["tokens"]["data_offsets"] = {40, 48};
  CHECK_THAT(error_of(h, 48), Catch::Contains("hole"));
  h = good_header();
  h["tokens"]["data_offsets"] = {32, 1ull << 62};
  CHECK_THAT(error_of(h), Catch::Contains("beyond the data section"));
  h = good_header();
  h["k.0"]["data_offsets"] = {-1, 16};
  CHECK_THAT(error_of(h), Catch::Contains("non-negative integer"));
  h = good_header();
  h["k.0"]["dtype"] = "F16";  // 4 halves = 8 bytes, not 16
  CHECK_THAT(error_of(h), Catch::Contains("holds 16 bytes") && Catch::Contains("need 8"));
  h = good_header();
  h["k.0"]["shape"] = {1ull << 40, 1ull << 40, 1ull << 40};
  CHECK_THAT(error_of(h), Catch::Contains("need more"));
  h = good_header();
  h["k.0"]["dtype"] = "F64";
  CHECK_THAT(error_of(h), Catch::Contains("unsupported dtype"));
  h = good_header();
  h["k.0"]["dtype"] = "I32";
  CHECK_THAT(error_of(h), Catch::Contains("must be F32"));
  h = good_header();
  h["tokens"]["dtype"] = "F32";
  CHECK_THAT(error_of(h), Catch::Contains("tokens\" must be I32"));
  h = good_header();
  h.erase("v.0");
  h["tokens"]["data_offsets"] = {16, 24};
  CHECK_THAT(error_of(h, 24), Catch::Contains("missing tensor \"v.0\""));
  h = good_header();
  h.erase("tokens");
  CHECK_THAT(error_of(h, 32), Catch::Contains("missing tensor \"tokens\""));
  h = good_header();
  h["v.1"] = h["v.0"];
  h.erase("v.0");
  CHECK_THAT(error_of(h), Catch::Contains("missing tensor \"k.1\"") || Catch::Contains("missing tensor \"v.0\""));
  h = good_header();
  h["q.0"] = h["tokens"];
  h["q.0"]["data_offsets"] = {40, 48};
  CHECK_THAT(error_of(h, 48), Catch::Contains("unexpected tensor \"q.0\""));
  h = good_header();
  h["v.0"]["shape"] = {1, 2, 2};
  CHECK_THAT(error_of(h), Catch::Contains("shape differs"));
  h = good_header();
  h["k.0"]["shape"] = {2, 2};
  h["v.0"]["shape"] = {2, 2};
  CHECK_THAT(error_of(h), Catch::Contains("[tokens, kv_heads, head_dim]"));
  h = good_header();
  h["tokens"]["shape"] = {1};
  h["tokens"]["data_offsets"] = {32, 36};
  CHECK_THAT(error_of(h, 36), Catch::Contains("tokens has 1 ids but k.0 has 2 rows"));
  h = good_header();
  h["__metadata__"]["head_dim"] = "8";
  CHECK_THAT(error_of(h), Catch::Contains("disagrees"));
  h = good_header();
  h["__metadata__"]["rope_theta"] = "ten";
  CHECK_THAT(error_of(h), Catch::Contains("rope_theta"));
  h = good_header();
  h["__metadata__"]["keys_pre_rope"] = "yes";
  CHECK_THAT(error_of(h), Catch::Contains("keys_pre_rope"));
  h = good_header();
  h["__metadata__"]["n_layers"] = 1;
  CHECK_THAT(error_of(h), Catch::Contains("not a string"));
  CHECK_THROWS_AS(parse_dtype("f8"), std::invalid_argument);
  CHECK(parse_dtype("BF16") == Dtype::BF16);
  CHECK(parse_dtype("fp16") == Dtype::F16);
}

TEST_CASE("random corruption of a KV file never crashes the reader", "[codec][safetensors]") {
  const auto good = kv_to_safetensors(synthetic_kv(6), Dtype::F16);
  std::mt19937 rng(11);
  int rejected = 0;
  for (int i = 0; i < 3000; ++i) {
    auto f = good;
    const int flips = 1 + int(rng() % 4);
    for (int j = 0; j < flips; ++j) f[rng() % std::min<size_t>(f.size(), 8 + 600)] ^= uint8_t(1u << (rng() % 8));
    if (rng() % 4 == 0) f.resize(rng() % f.size());
    try {
      const KvCache kv = kv_from_safetensors(f.data(), f.size());
      kv.validate();
    } catch (const std::runtime_error&) {
      ++rejected;
    } catch (const std::invalid_argument&) {
      ++rejected;
    }
  }
  CHECK(rejected > 1000);
}

// A file with no tokens has no data to bound its shape by: kv_heads x head_dim (KvShape's int
// kv_dim) is bounded on its own (65536 x 65536 overflowed it).
TEST_CASE("a KV file without tokens cannot claim an unrepresentable shape", "[codec][safetensors]") {
  const auto empty = nlohmann::json::parse(R"({
    "k.0": {"dtype": "F32", "shape": [0, 65536, 65536], "data_offsets": [0, 0]},
    "v.0": {"dtype": "F32", "shape": [0, 65536, 65536], "data_offsets": [0, 0]},
    "tokens": {"dtype": "I32", "shape": [0], "data_offsets": [0, 0]}})");
  CHECK_THAT(error_of(empty, 0), Catch::Contains("exceeds 2^24"));
  auto ok = empty;
  for (const char* t : {"k.0", "v.0"}) ok[t]["shape"] = {0, 8, 64};
  CHECK(error_of(ok, 0) == "(accepted)");
}
