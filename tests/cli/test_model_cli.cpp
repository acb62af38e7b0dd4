// The model-facing CLI commands run as a process (build/bin/kvstream): generate prints run.c's
// exact text, prefill writes a KV file that kv-info and score read, and errors exit 1 with a message.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/cli/shell.h"
#include "tests/test_data.h"

using kvstream::testing::quote;

namespace {
struct Run {
  int code;
  std::string out;  // stdout and stderr
};
Run run(const std::string& args, bool merge_stderr = false) {
  const auto [code, out] = kvstream::testing::shell(quote(kvstream::testing::kvstream_bin()) + " " + args +
                                                    (merge_stderr ? " 2>&1" : " 2>/dev/null"));
  return {code, out};
}
std::string model_args() {
  return "--model " + quote(kvstream::testing::model_path()) + " --tokenizer " + quote(kvstream::testing::tokenizer_path());
}
}  // namespace

TEST_CASE("kvstream generate prints exactly run.c's greedy text", "[cli][model]") {
  std::ifstream in(kvstream::testing::golden_path());
  REQUIRE(in);
  const auto golden = nlohmann::json::parse(in)["prompts"];
  for (const std::string prompt : {"Once upon a time", "The little cat", ""}) {
    INFO("prompt '" << prompt << "'");
    const Run r = run("generate " + model_args() + " --prompt " + quote(prompt) + " --steps 64 --temperature 0");
    CHECK(r.code == 0);
    CHECK(r.out == golden[prompt]["text"].get<std::string>());
  }
}

TEST_CASE("kvstream prefill writes a KV file that kv-info and score read", "[cli][model]") {
  const auto dir = std::filesystem::temp_directory_path() / ("kvstream_cli_model_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string kv = (dir / "kv.safetensors").string();
  const Run p = run("prefill " + model_args() + " --text-file " + quote(kvstream::testing::text_path()) +
                    " --max-tokens 200 --dtype f16 --pre-rope -o " + quote(kv));
  REQUIRE(p.code == 0);
  CHECK_THAT(p.out, Catch::Contains("200 tokens") && Catch::Contains("F16"));
  const Run info = run("kv-info " + quote(kv) + " --json");
  REQUIRE(info.code == 0);
  const auto j = nlohmann::json::parse(info.out);
  CHECK(j["tokens"] == 200);
  CHECK(j["layers"] == 5);
  CHECK(j["kv_heads"] == 4);
  CHECK(j["head_dim"] == 8);
  CHECK(j["dtype"] == "F16");
  CHECK(j["keys_pre_rope"] == true);
  CHECK(j["model"] == "stories260K");
  CHECK(j["data_bytes"] == 200 * (2 * 5 * 32 * 2 + 4));
  CHECK(j["file_bytes"] == std::filesystem::file_size(kv));
  const Run text = run("kv-info " + quote(kv));
  CHECK(text.code == 0);
  CHECK_THAT(text.out, Catch::Contains("200 tokens") && Catch::Contains("before RoPE"));
  const Run s = run("score " + model_args() + " --kv " + quote(kv) + " --text " + quote(" The sun was shining.") + " --json");
  REQUIRE(s.code == 0);
  const auto sj = nlohmann::json::parse(s.out);
  CHECK(sj["context_tokens"] == 200);
  CHECK(sj["tokens"].get<int>() == int(sj["per_token"].size()));
  CHECK(sj["tokens"].get<int>() >= 4);
  CHECK(sj["sum_logprob"].get<double>() < 0);
  CHECK(sj["perplexity"].get<double>() > 1);
  // Errors: the exit code of the error's class (README, "Exit codes") with a clear message, no crash.
  std::ofstream(dir / "bad.safetensors") << "not a safetensors file at all";
  const Run bad = run("kv-info " + quote((dir / "bad.safetensors").string()), true);
  CHECK(bad.code == 14);  // corrupt
  CHECK_THAT(bad.out, Catch::Contains("invalid safetensors") && Catch::Contains("error (corrupt)"));
  const Run nomodel = run("generate --model no/such.bin --tokenizer " + quote(kvstream::testing::tokenizer_path()) + " --prompt x", true);
  CHECK(nomodel.code == 12);  // not_found
  CHECK_THAT(nomodel.out, Catch::Contains("no/such.bin"));
  const Run wrongtok = run("generate --model " + quote(kvstream::testing::model_path()) + " --tokenizer " +
                           quote(kvstream::testing::model_path()) + " --prompt x", true);
  CHECK(wrongtok.code == 14);  // corrupt: a checkpoint is no tokenizer
  CHECK_THAT(wrongtok.out, Catch::Contains("tokenizer"));
  const Run usage = run("generate --no-such-option", true);
  CHECK(usage.code == 2);
  std::filesystem::remove_all(dir);
}
