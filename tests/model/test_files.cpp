// Loading llama2.c checkpoint and tokenizer files: the real files load, the tokenizer round-trips
// real text, and damaged files (truncated, wrong header, trailing bytes) fail with clear errors.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "model/checkpoint.h"
#include "model/file_bytes.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "tests/test_data.h"

using namespace kvstream::model;
using kvstream::KvCache;

namespace {
std::vector<uint8_t> real_model() { return read_file_bytes(kvstream::testing::model_path(), "model"); }
std::vector<uint8_t> real_tok() { return read_file_bytes(kvstream::testing::tokenizer_path(), "tok"); }
void set_i32(std::vector<uint8_t>& b, size_t off, int32_t v) { std::memcpy(b.data() + off, &v, 4); }
const Tokenizer& tok() {
  static const Tokenizer t = Tokenizer::load(kvstream::testing::tokenizer_path());
  return t;
}
std::string decode_all(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 1; i < ids.size(); ++i) s += tok().decode(ids[i - 1], ids[i]);
  return s;
}
}  // namespace

TEST_CASE("real checkpoint parses with the documented size", "[model][files]") {
  const auto bytes = real_model();
  const Checkpoint ck = parse_checkpoint(bytes);
  CHECK(ck.config.file_bytes() == bytes.size());
  CHECK(ck.token_embedding.size() == 512u * 64);
  CHECK(ck.w2.size() == 5u * 64 * 172);
  CHECK(ck.wcls.empty());
  // The legacy RoPE table is skipped: rms_final is the 64 floats just before it.
  float last;
  std::memcpy(&last, bytes.data() + bytes.size() - 4 * (512 * 8) - 4, 4);
  CHECK(ck.rms_final.back() == last);
}

TEST_CASE("damaged checkpoints are rejected with clear errors", "[model][files]") {
  auto bytes = real_model();
  SECTION("truncated") {
    bytes.resize(bytes.size() - 1000);
    CHECK_THROWS_WITH(parse_checkpoint(bytes, "x.bin"), Catch::Contains("x.bin") && Catch::Contains("truncated"));
  }
  SECTION("shorter than the header") {
    bytes.resize(10);
    CHECK_THROWS_WITH(parse_checkpoint(bytes), Catch::Contains("header"));
  }
  SECTION("trailing data") {
    bytes.push_back(0);
    CHECK_THROWS_WITH(parse_checkpoint(bytes), Catch::Contains("trailing"));
  }
  SECTION("header implies a bigger model") {
    set_i32(bytes, 0, 128);  // dim
    CHECK_THROWS_WITH(parse_checkpoint(bytes), Catch::Contains("implies"));
  }
  SECTION("zero or negative sizes") {
    set_i32(bytes, 8, 0);  // n_layers
    CHECK_THROWS_WITH(parse_checkpoint(bytes), Catch::Contains("n_layers"));
    set_i32(bytes, 8, -5);
    CHECK_THROWS_WITH(parse_checkpoint(bytes), Catch::Contains("n_layers"));
  }
  SECTION("absurd sizes do not allocate") {
    set_i32(bytes, 4, 2000000000);  // hidden_dim
    CHECK_THROWS_WITH(parse_checkpoint(bytes), Catch::Contains("hidden_dim"));
    set_i32(bytes, 4, 65536);
    set_i32(bytes, 0, 65536);
    CHECK_THROWS_WITH(parse_checkpoint(bytes), Catch::Contains("implies"));
  }
  SECTION("heads that do not divide") {
    set_i32(bytes, 12, 7);  // n_heads
    CHECK_THROWS_WITH(parse_checkpoint(bytes), Catch::Contains("divisible"));
    set_i32(bytes, 12, 8);
    set_i32(bytes, 16, 3);  // n_kv_heads
    CHECK_THROWS_WITH(parse_checkpoint(bytes), Catch::Contains("n_kv_heads"));
  }
  SECTION("missing file") {
    CHECK_THROWS_WITH(load_checkpoint("no/such/model.bin"), Catch::Contains("no/such/model.bin"));
    CHECK_THROWS_AS(Model::load("no/such/model.bin"), std::runtime_error);
  }
}

TEST_CASE("a checkpoint with a separate classifier uses it", "[model][files]") {
  // dim 8, hidden 12, 2 layers, 2 heads, 1 kv head, vocab -16 (unshared), seq_len 6.
  const int32_t hdr[7] = {8, 12, 2, 2, 1, -16, 6};
  Config c;
  c.dim = 8, c.hidden_dim = 12, c.n_layers = 2, c.n_heads = 2, c.n_kv_heads = 1, c.vocab_size = 16,
  c.seq_len = 6, c.shared_classifier = false;
  std::vector<uint8_t> bytes(c.file_bytes());
  std::memcpy(bytes.data(), hdr, sizeof(hdr));
  const size_t floats = (bytes.size() - 28) / 4;
  for (size_t i = 0; i < floats; ++i) {
    const float f = 0.05f * float(int((i * 2654435761u) % 41) - 20);
    std::memcpy(bytes.data() + 28 + 4 * i, &f, 4);
  }
  const Checkpoint ck = parse_checkpoint(bytes);
  REQUIRE_FALSE(ck.config.shared_classifier);
  REQUIRE(ck.wcls.size() == 16u * 8);
  CHECK(ck.wcls.front() != ck.token_embedding.front());
  const Model m = Model::from_checkpoint(ck, "toy");
  KvCache kv = m.new_cache();
  const auto lg = m.prefill(kv, std::vector<int32_t>{1, 5, 9, 3, 2, 7, 4, 11});  // past seq_len too
  CHECK(lg.size() == 16);
  for (float x : lg) CHECK(std::isfinite(x));
  CHECK(kv.num_tokens() == 8);
}

TEST_CASE("tokenizer round-trips real TinyStories text", "[model][files][tokenizer]") {
  std::ifstream in(kvstream::testing::text_path());
  REQUIRE(in);
  std::string text(20000, '\0');
  in.read(text.data(), text.size());
  text.resize(in.gcount());
  const auto ids = tok().encode(text);
  CHECK(ids.front() == Tokenizer::kBos);
  CHECK(ids.size() < text.size() / 2);  // BPE merges compress well
  CHECK(decode_all(ids) == text);
  // Byte fallback: characters missing from the 512-piece vocabulary become byte tokens.
  CHECK(tok().encode("€", false) == std::vector<int32_t>{tok().lookup(" "), 503});  // in the vocab
  const auto zhe = tok().encode("Ж", false);  // not in the vocab
  CHECK(zhe == std::vector<int32_t>{tok().lookup(" "), 0xD0 + 3, 0x96 + 3});
  CHECK(decode_all(tok().encode("a Ж € b")) == "a Ж € b");
  CHECK(tok().printable(5, 0xE2 + 3).empty());  // run.c safe_printf drops lone non-ASCII bytes
  CHECK(tok().decode(5, 13 + 3) == "\r");
  CHECK(tok().encode("", true, true) == std::vector<int32_t>{1, 2});
  CHECK(tok().encode("Hi", false, false).front() != 1);
  CHECK(tok().piece(1) == "\n<s>\n");
  CHECK_THROWS_AS(tok().piece(512), std::out_of_range);
}

// run.c encode() transcribed literally (O(n^2) merge loop), to check the fast merge against.
static std::vector<int32_t> run_c_encode(const std::string& text) {
  std::vector<int32_t> tokens{1};
  if (!text.empty()) tokens.push_back(tok().lookup(" "));
  std::string buf;
  for (size_t c = 0; c < text.size(); ++c) {
    if ((uint8_t(text[c]) & 0xC0) != 0x80) buf.clear();
    buf.push_back(text[c]);
    if (c + 1 < text.size() && (uint8_t(text[c + 1]) & 0xC0) == 0x80 && buf.size() < 4) continue;
    const int32_t id = tok().lookup(buf);
    if (id != -1) tokens.push_back(id);
    else for (char b : buf) tokens.push_back(int32_t(uint8_t(b)) + 3);
    buf.clear();
  }
  while (true) {
    float best_score = -1e10f;
    int best_id = -1, best_idx = -1;
    for (size_t i = 0; i + 1 < tokens.size(); ++i) {
      const int32_t id = tok().lookup(tok().piece(tokens[i]) + tok().piece(tokens[i + 1]));
      if (id != -1 && tok().score(id) > best_score) best_score = tok().score(id), best_id = id, best_idx = int(i);
    }
    if (best_idx == -1) break;
    tokens[best_idx] = best_id;
    tokens.erase(tokens.begin() + best_idx + 1);
  }
  return tokens;
}

TEST_CASE("fast BPE merge equals run.c's literal merge loop", "[model][files][tokenizer]") {
  std::ifstream in(kvstream::testing::text_path());
  REQUIRE(in);
  std::string text(6000, '\0');
  in.read(text.data(), text.size());
  text.resize(in.gcount());
  for (size_t start : {0, 1000, 2500}) {
    const std::string piece = text.substr(start, 1500);
    CHECK(tok().encode(piece) == run_c_encode(piece));
  }
  for (const char* s : {"a", " ", "  x  ", "aaaaaaaaaaaaaaaa", "Ж€\xff\x80" "abc\n\n", "\xe2\x80\x9cHi!\xe2\x80\x9d she said."})
    CHECK(tok().encode(s) == run_c_encode(s));
}

// tok512 without its 256 "<0xXX>" byte pieces: a real vocabulary with no byte fallback (llama2.c
// format: i32 max_token_length, then per piece f32 score, i32 length, bytes).
static Tokenizer tokenizer_without_byte_pieces() {
  std::vector<uint8_t> b(4);
  const int32_t max_len = tok().max_token_length();
  std::memcpy(b.data(), &max_len, 4);
  for (int32_t id = 0; id < tok().vocab_size(); ++id) {
    if (id >= 3 && id < 259) continue;
    const float score = tok().score(id);
    const std::string& p = tok().piece(id);
    const int32_t len = int32_t(p.size());
    b.insert(b.end(), reinterpret_cast<const uint8_t*>(&score), reinterpret_cast<const uint8_t*>(&score) + 4);
    b.insert(b.end(), reinterpret_cast<const uint8_t*>(&len), reinterpret_cast<const uint8_t*>(&len) + 4);
    b.insert(b.end(), p.begin(), p.end());
  }
  return Tokenizer::parse(b, "tok-no-bytes");
}

TEST_CASE("a tokenizer without byte-fallback pieces maps unknown characters to <unk> as SentencePiece", "[model][files][tokenizer]") {
  // The real tokenizer's byte pieces are where run.c's +3 puts them.
  for (int b = 0; b < 256; ++b) CHECK(tok().byte_token(uint8_t(b)) == b + 3);
  CHECK(tok().unk_id() == 0);
  const Tokenizer t = tokenizer_without_byte_pieces();
  REQUIRE(t.vocab_size() == 512 - 256);
  CHECK(t.unk_id() == 0);
  CHECK(t.byte_token(197) == -1);
  const int32_t space = t.lookup(" ");
  // One <unk> per run of unknown characters (the Polish letters here), like SentencePiece.
  CHECK(t.encode("\xc5\x81\xc3\xb3", false) == std::vector<int32_t>{space, 0});  // "Łó"
  const auto ids = t.encode("\xc5\x81\xc3\xb3" "d" "\xc5\xba was calm.");           // "Łódź was calm."
  CHECK(std::count(ids.begin(), ids.end(), 0) == 2);
  for (int32_t id : ids) CHECK((id >= 0 && id < t.vocab_size()));
  std::string text;
  for (size_t i = 1; i < ids.size(); ++i) text += t.decode(ids[i - 1], ids[i]);
  CHECK(text == "<unk>d<unk> was calm.");
  // Text the vocabulary covers encodes exactly as with the full tokenizer (ids shifted by the 256
  // removed pieces); characters that the full one sends as bytes become <unk>.
  std::ifstream in(kvstream::testing::text_path());
  std::string story(4000, '\0');
  in.read(story.data(), story.size());
  story.resize(size_t(in.gcount()));
  const auto full = tok().encode(story), stripped = t.encode(story);
  std::vector<int32_t> expected;
  for (int32_t id : full) {
    if (id >= 3 && id < 259) {
      if (expected.back() != 0) expected.push_back(0);
    } else {
      expected.push_back(id < 3 ? id : id - 256);
    }
  }
  CHECK(stripped == expected);
  // The full tokenizer still falls back to bytes for the same characters.
  CHECK(tok().encode("\xc5\x81", false) == std::vector<int32_t>{tok().lookup(" "), 0xC5 + 3, 0x81 + 3});
}

TEST_CASE("damaged tokenizer files are rejected with clear errors", "[model][files][tokenizer]") {
  auto bytes = real_tok();
  CHECK(Tokenizer::parse(bytes).vocab_size() == 512);
  SECTION("truncated in a piece") {
    bytes.resize(bytes.size() - 2);
    CHECK_THROWS_WITH(Tokenizer::parse(bytes, "t.bin"), Catch::Contains("t.bin") && Catch::Contains("entry 511") && Catch::Contains("truncated"));
  }
  SECTION("truncated in a length") {
    bytes.resize(4 + 8 + 5 + 3);  // <unk> entry, then 3 bytes
    CHECK_THROWS_WITH(Tokenizer::parse(bytes), Catch::Contains("entry 1"));
  }
  SECTION("bad max_token_length") {
    set_i32(bytes, 0, -1);
    CHECK_THROWS_WITH(Tokenizer::parse(bytes), Catch::Contains("max_token_length"));
  }
  SECTION("piece longer than max_token_length") {
    set_i32(bytes, 4 + 4, 1000);  // <unk>'s length
    CHECK_THROWS_WITH(Tokenizer::parse(bytes), Catch::Contains("entry 0"));
  }
  SECTION("negative length") {
    set_i32(bytes, 4 + 4, -3);
    CHECK_THROWS_WITH(Tokenizer::parse(bytes), Catch::Contains("length -3"));
  }
  SECTION("empty") {
    CHECK_THROWS_WITH(Tokenizer::parse({}), Catch::Contains("shorter"));
  }
  SECTION("a checkpoint is not a tokenizer") {
    CHECK_THROWS_AS(Tokenizer::load(kvstream::testing::model_path()), std::runtime_error);
  }
}
