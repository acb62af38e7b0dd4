// `kvstream profile` and `kvstream eval` on text as users have it (a chat transcript without a
// single blank line), their error for a text that is too short, and their progress line: drawn
// on a terminal (a pseudo-terminal from script(1)), never into a pipe or a file, never with --json.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/file_bytes.h"
#include "tests/cli/shell.h"
#include "tests/test_data.h"
#include "tests/text_fixtures.h"

using kvstream::testing::quote;

namespace {
std::string kv() { return quote(kvstream::testing::kvstream_bin()); }
std::string model_args() {
  return "--model " + quote(kvstream::testing::model_path()) + " --tokenizer " + quote(kvstream::testing::tokenizer_path());
}
// `cmd` with stdout and stderr on a pseudo-terminal; returns its exit code and what it printed.
std::pair<int, std::string> on_terminal(const std::string& cmd) {
  return kvstream::testing::shell("script -qec " + quote(cmd) + " /dev/null");
}
const std::string kProgressLine = "\r\x1b[K";
}  // namespace

TEST_CASE("profile and eval cut contexts from a chat transcript without blank lines, progress only on a terminal",
          "[cli][model][contexts]") {
  const auto dir = std::filesystem::temp_directory_path() / ("kvstream_cli_text_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string chat = (dir / "chat.txt").string(), profile = (dir / "chat.kvprofile").string();
  {
    const std::string text = kvstream::testing::chat_transcript(kvstream::model::read_text_file(kvstream::testing::text_path()));
    REQUIRE(text.find("\n\n") == std::string::npos);
    REQUIRE(text.size() > 500000);
    std::ofstream(chat, std::ios::binary) << text;
  }
  const std::string small = " --context-tokens 128 --continuation-tokens 32 --threads 2";

  // profile on a terminal: succeeds on this text, and draws its progress line.
  const auto [pcode, pout] = on_terminal(kv() + " profile " + model_args() + " --text-file " + quote(chat) +
                                         " --contexts 4 --selection-contexts 4" + small + " -o " + quote(profile));
  INFO(pout);
  REQUIRE(pcode == 0);
  CHECK_THAT(pout, Catch::Contains(kProgressLine + "profile: candidates") && Catch::Contains("standard"));
  REQUIRE(std::filesystem::exists(profile));

  const std::string eval = kv() + " eval " + model_args() + " --profile " + quote(profile) + " --text-file " +
                           quote(chat) + " --contexts 4" + small;
  // eval in a pipeline (stdout a pipe, stderr a file): the table, and no progress anywhere.
  const std::string err = (dir / "eval.err").string();
  const auto [ecode, eout] = kvstream::testing::shell(eval + " 2>" + quote(err));
  CHECK(ecode == 0);
  CHECK_THAT(eout, Catch::Contains("contexts 4 (128 + 32 tokens)") && Catch::Contains("q8"));
  CHECK(std::filesystem::file_size(err) == 0);
  // eval on a terminal: progress; with --json on a terminal: valid JSON alone, no progress.
  const auto [tcode, tout] = on_terminal(eval);
  CHECK(tcode == 0);
  CHECK_THAT(tout, Catch::Contains(kProgressLine + "eval: entries"));
  const auto [jcode, jout] = on_terminal(eval + " --json");
  CHECK(jcode == 0);
  CHECK(jout.find("eval:") == std::string::npos);
  CHECK(jout.find('\x1b') == std::string::npos);
  const auto j = nlohmann::json::parse(jout);
  CHECK(j["contexts"] == 4);
  CHECK(j["entries"].size() >= 6);

  // Too little text: exit 11 (invalid_argument), and the message names the file and what to do.
  const std::string tiny = (dir / "tiny.txt").string();
  std::ofstream(tiny) << "User: Hi.\nAssistant: Hello there, how can I help?\n";
  const auto [scode, sout] = kvstream::testing::shell(kv() + " eval " + model_args() + " --profile " + quote(profile) +
                                                      " --text-file " + quote(tiny) + " 2>&1");
  CHECK(scode == 11);
  CHECK_THAT(sout, Catch::Contains(tiny) && Catch::Contains("too short") && Catch::Contains("give more text"));
  std::filesystem::remove_all(dir);
}
