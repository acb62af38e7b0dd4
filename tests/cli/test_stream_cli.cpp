// The streaming CLI commands run as processes (build/bin/kvstream send / recv) over loopback:
// `recv -o` writes the context's token ids for chunks fetched as KV, and a sender serving one
// corrupt blob makes `recv` fall back to text for that chunk (warning on stderr, "fallback" in
// --json) and still complete; `recv --save-back` stores the fetched context and `send --store`
// serves it by the printed key. Authentication is on: the sender serves the fixture's root with its
// keys file, the receivers authenticate as tenant "test"; `send` without --keys or --insecure
// refuses to start.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "codec/safetensors.h"
#include "tests/cli/send_process.h"
#include "tests/cli/shell.h"
#include "tests/streamer/fixture.h"
#include "tests/test_data.h"

using kvstream::testing::SendProcess;
using kvstream::testing::StreamFixture;
using kvstream::testing::slurp;
using kvstream::testing::quote;
using kvstream::testing::shell;

namespace {

// The authentication options of `kvstream recv` for the fixture's tenant.
std::string auth() {
  return " --tenant " + StreamFixture::get().tenant + " --keys " + quote(StreamFixture::get().keys_file);
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("kvstream-cli-" + std::to_string(::getpid()) + "-" + name)).string();
}

}  // namespace

TEST_CASE("kvstream recv -o writes the context's token ids for KV-fetched chunks", "[cli][stream]") {
  const auto& fx = StreamFixture::get();
  SendProcess send("");
  const std::string out = temp_path("q8.safetensors"), profiles = temp_path("profiles");
  // fixed:q8 fetches no text, and without --model nothing is recomputed: the ids can only come
  // from the manifest
  const auto [code, stdout_text] =
      shell(quote(kvstream::testing::kvstream_bin()) + " recv --connect 127.0.0.1:" + send.port +
            " --context story --slo-ms 10000 --policy fixed:q8" + auth() + " --profile-dir " + quote(profiles) + " -o " + quote(out) +
            " 2>&1");
  INFO(stdout_text);
  REQUIRE(code == 0);
  const auto kv = kvstream::read_safetensors(out);
  REQUIRE(kv.num_tokens() == fx.kv.num_tokens());
  REQUIRE(kv.tokens == fx.kv.tokens);
  std::filesystem::remove(out);
  std::filesystem::remove_all(profiles);
}

TEST_CASE("kvstream recv falls back to text for a chunk whose blob is corrupt", "[cli][stream]") {
  const auto& fx = StreamFixture::get();
  SendProcess send("--fault-corrupt-blob 2");
  const std::string out = temp_path("fallback.safetensors"), profiles = temp_path("profiles2"),
                    err = temp_path("recv.err");
  const auto [code, json_text] =
      shell(quote(kvstream::testing::kvstream_bin()) + " recv --connect 127.0.0.1:" + send.port +
            " --context story --slo-ms 10000 --policy fixed:q8" + auth() + " --model " + quote(kvstream::testing::model_path()) +
            " --profile-dir " + quote(profiles) + " --json -o " + quote(out) + " 2> " + quote(err));
  const std::string stderr_text = slurp(err);
  INFO(stderr_text);
  REQUIRE(code == 0);
  REQUIRE_THAT(stderr_text, Catch::Contains("warning: chunk 2 (level q8) failed to decode") &&
                                Catch::Contains("fetching it again as text"));
  const auto j = nlohmann::json::parse(json_text);
  REQUIRE(j["chunks"].size() == 7);
  for (size_t c = 0; c < 7; ++c) {
    REQUIRE(j["chunks"][c]["level"] == "q8");
    REQUIRE(j["chunks"][c].contains("fallback") == (c == 2));
  }
  REQUIRE(j["chunks"][2]["fallback"] == "text");
  REQUIRE_THAT(j["chunks"][2]["fallback_reason"].get<std::string>(), Catch::Contains("CRC"));
  const auto kv = kvstream::read_safetensors(out);
  REQUIRE(kv.tokens == fx.kv.tokens);
  // chunk 2's rows (a recompute on the q8 rows of chunks 0-1) are close to the original
  const size_t kd = size_t(kv.shape.kv_dim());
  double max_err = 0, max_abs = 0;
  for (int l = 0; l < kv.shape.n_layers; ++l)
    for (size_t i = 128 * kd; i < 192 * kd; ++i) {
      max_err = std::max<double>(max_err, std::abs(kv.v[l][i] - fx.kv.v[l][i]));
      max_abs = std::max<double>(max_abs, std::abs(fx.kv.v[l][i]));
    }
  REQUIRE(max_err < 0.05 * max_abs);
  std::filesystem::remove(out);
  std::filesystem::remove(err);
  std::filesystem::remove_all(profiles);
}

TEST_CASE("kvstream recv --save-back stores the context and send --store serves it by key", "[cli][stream][store]") {
  const auto& fx = StreamFixture::get();
  const std::string store_dir = temp_path("store"), profiles = temp_path("profiles3"), out = temp_path("again.safetensors");
  std::filesystem::remove_all(store_dir);
  const std::string secret = temp_path("store-secret");
  std::filesystem::remove(secret);
  kvstream::streamer::write_new_secret(secret);
  SendProcess send("--store " + quote(store_dir) + " --store-secret-file " + quote(secret));
  const std::string bin = quote(kvstream::testing::kvstream_bin());
  const auto [code, json_text] =
      shell(bin + " recv --connect 127.0.0.1:" + send.port + " --context story --slo-ms 10000 --policy fixed:max" + auth() +
            " --profile-dir " + quote(profiles) + " --save-back " + quote(store_dir) + " --store-secret-file " +
            quote(secret) + " --json 2>/dev/null");
  REQUIRE(code == 0);
  const auto j = nlohmann::json::parse(json_text);
  const std::string key = j.at("save_back").at("key");
  REQUIRE(key.size() == 32);
  REQUIRE(j.at("save_back").at("tokens") == fx.kv.num_tokens());
  // the running sender picks up the entry written by the other process
  const auto [code2, text2] = shell(bin + " recv --connect 127.0.0.1:" + send.port + " --context " + key +
                                    " --slo-ms 10000 --policy fixed:max" + auth() + " --profile-dir " + quote(profiles) + " -o " +
                                    quote(out) + " 2>&1");
  INFO(text2);
  REQUIRE(code2 == 0);
  const auto kv = kvstream::read_safetensors(out);
  REQUIRE(kv.tokens == fx.kv.tokens);
  const auto [code3, text3] = shell(bin + " recv --connect 127.0.0.1:" + send.port + " --context " +
                                    std::string(32, 'b') + " --slo-ms 10000" + auth() + " --profile-dir " + quote(profiles) + " 2>&1");
  REQUIRE(code3 != 0);
  REQUIRE(text3.find("unknown context") != std::string::npos);
  std::filesystem::remove_all(store_dir);
  std::filesystem::remove_all(profiles);
  std::filesystem::remove(out);
  std::filesystem::remove(secret);
}

TEST_CASE("kvstream send refuses to serve without --keys unless --insecure", "[cli][stream]") {
  const auto [code, text] = shell(quote(kvstream::testing::kvstream_bin()) + " send --listen 127.0.0.1:0 --dir " +
                                  quote(std::filesystem::temp_directory_path().string()) + " --duration-s 1 2>&1");
  REQUIRE(code != 0);
  REQUIRE_THAT(text, Catch::Contains("--keys") && Catch::Contains("--insecure"));
}
