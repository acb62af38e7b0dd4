#include "model/tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "kvstream/error.h"
#include "model/file_bytes.h"

namespace kvstream::model {

namespace {
[[noreturn]] void fail(const std::string& what, const std::string& why) {
  throw kvstream::Error(ErrorCode::kCorrupt, what + ": invalid llama2.c tokenizer: " + why);
}
constexpr int kMaxTokenLength = 1 << 16;
}  // namespace

Tokenizer Tokenizer::load(const std::string& path) {
  return parse(read_file_bytes(path, "tokenizer"), path);
}

Tokenizer Tokenizer::parse(const std::vector<uint8_t>& bytes, const std::string& what) {
  Tokenizer t;
  if (bytes.size() < 4) fail(what, "file is " + std::to_string(bytes.size()) + " bytes, shorter than the 4-byte header");
  int32_t max_len;
  std::memcpy(&max_len, bytes.data(), 4);
  if (max_len <= 0 || max_len > kMaxTokenLength)
    fail(what, "max_token_length " + std::to_string(max_len) + " is out of range (1.." +
                   std::to_string(kMaxTokenLength) + ")");
  t.max_token_length_ = max_len;
  size_t off = 4;
  while (off < bytes.size()) {
    const size_t id = t.pieces_.size();
    if (bytes.size() - off < 8)
      fail(what, "entry " + std::to_string(id) + " at byte " + std::to_string(off) +
                     " is truncated (needs 8 bytes of score and length, " +
                     std::to_string(bytes.size() - off) + " left)");
    float score;
    int32_t len;
    std::memcpy(&score, bytes.data() + off, 4);
    std::memcpy(&len, bytes.data() + off + 4, 4);
    off += 8;
    if (len < 0 || len > max_len)
      fail(what, "entry " + std::to_string(id) + " has length " + std::to_string(len) +
                     " outside 0..max_token_length " + std::to_string(max_len));
    if (bytes.size() - off < size_t(len))
      fail(what, "entry " + std::to_string(id) + " is truncated (piece of " + std::to_string(len) +
                     " bytes, " + std::to_string(bytes.size() - off) + " left)");
    t.pieces_.emplace_back(reinterpret_cast<const char*>(bytes.data() + off), size_t(len));
    t.scores_.push_back(score);
    off += size_t(len);
  }
  if (t.pieces_.size() < 3) fail(what, "vocabulary has " + std::to_string(t.pieces_.size()) + " tokens (need at least <unk>, BOS, EOS)");
  t.index_.reserve(t.pieces_.size() * 2);
  for (size_t i = 0; i < t.pieces_.size(); ++i)
    t.index_.emplace(t.pieces_[i], static_cast<int32_t>(i));  // first id wins on duplicates
  if (const int32_t unk = t.lookup("<unk>"); unk >= 0) t.unk_id_ = unk;
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    t.byte_ids_[b] = t.lookup(name);
  }
  return t;
}

const std::string& Tokenizer::piece(int32_t id) const {
  if (id < 0 || size_t(id) >= pieces_.size())
    throw std::out_of_range("token id " + std::to_string(id) + " outside the vocabulary of " +
                            std::to_string(pieces_.size()));
  return pieces_[id];
}

float Tokenizer::score(int32_t id) const {
  piece(id);
  return scores_[id];
}

int32_t Tokenizer::lookup(std::string_view p) const {
  auto it = index_.find(std::string(p));
  return it == index_.end() ? -1 : it->second;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool bos, bool eos) const {
  if (auto nul = text.find('\0'); nul != std::string_view::npos) text = text.substr(0, nul);
  std::vector<int32_t> tokens;
  tokens.reserve(text.size() + 3);
  if (bos) tokens.push_back(kBos);
  if (!text.empty()) {
    const int32_t dummy = lookup(" ");
    if (dummy < 0) throw std::runtime_error("tokenizer has no \" \" piece for the dummy prefix");
    tokens.push_back(dummy);
  }
  // UTF-8 codepoints (at most 4 bytes) looked up whole, else byte fallback, as run.c; else <unk>
  // (one per run of unknown codepoints, as SentencePiece).
  std::string buf;
  for (size_t c = 0; c < text.size(); ++c) {
    if ((uint8_t(text[c]) & 0xC0) != 0x80) buf.clear();
    buf.push_back(text[c]);
    const uint8_t next = c + 1 < text.size() ? uint8_t(text[c + 1]) : 0;
    if ((next & 0xC0) == 0x80 && buf.size() < 4) continue;
    const int32_t id = lookup(buf);
    const bool bytes_known = std::all_of(buf.begin(), buf.end(), [&](char b) { return byte_ids_[uint8_t(b)] >= 0; });
    if (id != -1) {
      tokens.push_back(id);
    } else if (bytes_known) {
      for (char b : buf) tokens.push_back(byte_ids_[uint8_t(b)]);
    } else if (tokens.empty() || tokens.back() != unk_id_) {
      tokens.push_back(unk_id_);
    }
    buf.clear();
  }
  // Greedy merges as run.c: repeatedly merge the adjacent pair whose merged piece has the highest
  // score (leftmost on ties; scores must beat -1e10). run.c rescans all pairs per merge (O(n^2));
  // this keeps the candidates in a heap over a linked list, which picks the same pair each time:
  // list order equals original-position order, so "leftmost" is "smallest original position".
  const int n = static_cast<int>(tokens.size());
  if (n >= 2) {
    std::vector<int> prev(n), next(n);
    std::vector<uint32_t> ver(n, 0);
    std::vector<char> alive(n, 1);
    for (int i = 0; i < n; ++i) prev[i] = i - 1, next[i] = i + 1 < n ? i + 1 : -1;
    struct Cand {
      float score;
      int left, right, merged;
      uint32_t vl, vr;
    };
    auto worse = [](const Cand& a, const Cand& b) {  // heap top = best score, then leftmost
      if (a.score != b.score) return a.score < b.score;
      return a.left > b.left;
    };
    std::vector<Cand> heap;
    auto push = [&](int left) {
      if (left < 0 || next[left] < 0) return;
      const int right = next[left];
      if (tokens[left] == unk_id_ || tokens[right] == unk_id_) return;  // <unk> stays whole
      const int32_t id = lookup(pieces_[tokens[left]] + pieces_[tokens[right]]);
      if (id == -1 || !(scores_[id] > -1e10f)) return;
      heap.push_back({scores_[id], left, right, id, ver[left], ver[right]});
      std::push_heap(heap.begin(), heap.end(), worse);
    };
    for (int i = 0; i + 1 < n; ++i) push(i);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), worse);
      const Cand c = heap.back();
      heap.pop_back();
      if (!alive[c.left] || !alive[c.right] || next[c.left] != c.right || ver[c.left] != c.vl ||
          ver[c.right] != c.vr)
        continue;  // stale: one side was merged since
      tokens[c.left] = c.merged;
      ++ver[c.left];
      alive[c.right] = 0;
      next[c.left] = next[c.right];
      if (next[c.left] >= 0) prev[next[c.left]] = c.left;
      push(prev[c.left]);
      push(c.left);
    }
    int out = 0;
    for (int i = 0; i >= 0; i = next[i]) tokens[out++] = tokens[i];
    tokens.resize(out);
  }
  if (eos) tokens.push_back(kEos);
  return tokens;
}

std::string Tokenizer::decode(int32_t prev, int32_t token) const {
  std::string_view p = piece(token);
  if (prev == kBos && !p.empty() && p[0] == ' ') p.remove_prefix(1);
  // run.c: sscanf(piece, "<0x%02hhX>", &byte) == 1 -> the raw byte
  if (p.size() >= 4 && p.substr(0, 3) == "<0x") {
    auto hex = [](char ch) -> int {
      if (ch >= '0' && ch <= '9') return ch - '0';
      if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
      if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
      return -1;
    };
    const int h0 = hex(p[3]);
    if (h0 >= 0) {
      const int h1 = p.size() > 4 ? hex(p[4]) : -1;
      const int byte = h1 >= 0 ? h0 * 16 + h1 : h0;
      return byte == 0 ? std::string() : std::string(1, char(byte));  // C string: NUL prints nothing
    }
  }
  return std::string(p);
}

std::string Tokenizer::printable(int32_t prev, int32_t token) const {
  std::string s = decode(prev, token);
  if (s.size() == 1) {
    const uint8_t b = uint8_t(s[0]);
    const bool print = b >= 0x20 && b <= 0x7E;
    const bool space = b == ' ' || (b >= '\t' && b <= '\r');
    if (!print && !space) return {};
  }
  // A C string stops at its first NUL.
  if (auto nul = s.find('\0'); nul != std::string::npos) s.resize(nul);
  return s;
}

std::string Tokenizer::detokenize(const std::vector<int32_t>& tokens) const {
  std::string out;
  for (size_t i = 1; i < tokens.size(); ++i) out += printable(tokens[i - 1], tokens[i]);
  return out;
}

}  // namespace kvstream::model
