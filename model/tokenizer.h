// Tokenizer: the llama2.c tokenizer format (tok512.bin) with run.c-exact encode and decode.
//
// File layout: int32 max_token_length, then per token: float32 score, int32 length, bytes.
// Token ids: 0 = <unk>, 1 = BOS, 2 = EOS, 3..258 = byte-fallback tokens <0x00>..<0xFF> (in
// llama2.c tokenizers; a vocabulary without byte pieces works too, see encode()).
//
// Contract: load() reads entries until the end of the file and throws std::runtime_error (with the
// path and the entry index) on truncation, negative or oversized lengths, or an empty vocabulary.
// encode() reproduces llama2.c run.c encode(): optional BOS, a dummy " " prefix token when the
// text is non-empty, UTF-8 codepoint lookup with byte fallback, then greedy pair merges by
// highest score (leftmost on ties); optional EOS. Text stops at the first NUL byte as in C.
// Byte fallback uses the "<0xXX>" pieces (ids 3..258 in llama2.c tokenizers, where this is
// run.c's +3). A codepoint that is not in the vocabulary and has no byte pieces for all of its
// bytes becomes <unk> (the "<unk>" piece, else id 0), and a run of such codepoints one <unk>, as
// SentencePiece does without byte fallback; <unk> never merges with a neighbour. So any text
// encodes, whatever the vocabulary.
// decode(prev, token) is run.c decode(): strips a leading space after BOS and maps "<0xXX>" pieces
// to the raw byte. printable() is run.c safe_printf()'s filter (drops lone non-printable bytes).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kvstream::model {

class Tokenizer {
 public:
  static constexpr int32_t kBos = 1;
  static constexpr int32_t kEos = 2;

  static Tokenizer load(const std::string& path);
  static Tokenizer parse(const std::vector<uint8_t>& bytes, const std::string& what = "tokenizer");

  int vocab_size() const { return static_cast<int>(pieces_.size()); }
  int max_token_length() const { return max_token_length_; }
  const std::string& piece(int32_t id) const;  // raw vocabulary piece; std::out_of_range if bad id
  float score(int32_t id) const;

  std::vector<int32_t> encode(std::string_view text, bool bos = true, bool eos = false) const;
  // The bytes run.c prints for `token` following `prev` (see contract above).
  std::string decode(int32_t prev, int32_t token) const;
  // decode() filtered like run.c safe_printf (empty when run.c would print nothing).
  std::string printable(int32_t prev, int32_t token) const;
  // Concatenated printable pieces of tokens[1..] (each decoded against its predecessor), i.e.
  // exactly what run.c prints for a token sequence that starts with tokens[0].
  std::string detokenize(const std::vector<int32_t>& tokens) const;
  // Looks up an exact piece; -1 when absent.
  int32_t lookup(std::string_view piece) const;
  int32_t unk_id() const { return unk_id_; }
  // The "<0xXX>" byte-fallback token of byte b; -1 when the vocabulary has none.
  int32_t byte_token(uint8_t b) const { return byte_ids_[b]; }

 private:
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int32_t> index_;
  int max_token_length_ = 0;
  int32_t unk_id_ = 0;
  std::array<int32_t, 256> byte_ids_{};
};

}  // namespace kvstream::model
