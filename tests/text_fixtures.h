// Text as users have it, made from the bundled TinyStories text, for the tests of cutting contexts
// from any text (tests/model/test_contexts.cpp, tests/cli/test_text_input_cli.cpp).
#pragma once
#include <string>

namespace kvstream::testing {

// `stories` rewritten as a chat transcript: one sentence per line, alternating "User: " and
// "Assistant: ", and not a single blank line (like an exported chat log).
inline std::string chat_transcript(const std::string& stories) {
  std::string out, sentence;
  bool user = true;
  for (char ch : stories) {
    if (ch == '\n') ch = ' ';
    sentence += ch;
    if (ch == '.' || ch == '!' || ch == '?') {
      const size_t b = sentence.find_first_not_of(' ');
      if (b != std::string::npos) out += (user ? "User: " : "Assistant: ") + sentence.substr(b) + "\n";
      user = !user;
      sentence.clear();
    }
  }
  return out;
}

}  // namespace kvstream::testing
