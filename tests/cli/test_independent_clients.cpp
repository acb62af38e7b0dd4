// Checks with clients nobody here wrote:
// - numpy plus a few lines of header parsing (scripts/read_kv_numpy.py) reads the bundled
//   tests/codec/data/kv_128.safetensors and `kvstream prefill` outputs: the same header facts as
//   `kvstream kv-info --json`, the same values kvstream reads, run.c's own K/V rows (golden.json),
//   and f16/bf16 files rounded from f32 exactly as numpy rounds;
// - iperf3 -R through `kvstream relay` (scripts/iperf3_relay.sh) gets a constant link's capacity
//   within 5 % in the direction the relay shapes.
// Both tools come from Debian (python3-numpy, iperf3; scripts/setup.sh installs them).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "codec/safetensors.h"
#include "tests/cli/shell.h"
#include "tests/test_data.h"

using kvstream::testing::quote;
using nlohmann::json;

namespace {
std::string kv() { return quote(kvstream::testing::kvstream_bin()); }
std::string model_args() {
  return "--model " + quote(kvstream::testing::model_path()) + " --tokenizer " + quote(kvstream::testing::tokenizer_path());
}
json run_json(const std::string& cmd) {
  const auto [code, out] = kvstream::testing::shell(cmd);
  INFO(cmd << "\n" << out);
  REQUIRE(code == 0);
  return json::parse(out);
}
void run_ok(const std::string& cmd) {
  const auto [code, out] = kvstream::testing::shell(cmd + " 2>&1");
  INFO(cmd << "\n" << out);
  REQUIRE(code == 0);
}
json numpy_read(const std::string& file, const std::string& extra = "") {
  return run_json("/usr/bin/python3 " + quote(kvstream::testing::source_path("scripts/read_kv_numpy.py")) + " " +
                  quote(file) + " " + extra);
}

// numpy's reading of `file` agrees with kv-info's report and, value by value, with kvstream's reader.
void check_same_as_kvstream(const std::string& file) {
  INFO(file);
  const json np = numpy_read(file, "--values");
  const json info = run_json(kv() + " kv-info " + quote(file) + " --json");
  for (const char* key : {"file_bytes", "header_bytes", "data_bytes", "tokens", "layers", "kv_heads", "head_dim", "dtype"}) {
    INFO(key);
    CHECK(np[key] == info[key]);
  }
  CHECK(np["metadata"] == info["metadata"]);
  CHECK(np["metadata"]["model"] == info["model"]);
  CHECK(std::stod(np["metadata"]["rope_theta"].get<std::string>()) == info["rope_theta"].get<double>());
  CHECK((np["metadata"]["keys_pre_rope"] == "true") == info["keys_pre_rope"].get<bool>());
  const kvstream::KvCache c = kvstream::read_safetensors(file);
  REQUIRE(np["token_ids"].size() == c.num_tokens());
  for (size_t t = 0; t < c.num_tokens(); ++t) CHECK(np["token_ids"][t].get<int32_t>() == c.tokens[t]);
  size_t differ = 0, values = 0;
  for (int l = 0; l < c.shape.n_layers; ++l)
    for (size_t i = 0; i < c.k[l].size(); ++i) {
      differ += np["k"][l][i].get<float>() != c.k[l][i];
      differ += np["v"][l][i].get<float>() != c.v[l][i];
      values += 2;
    }
  CHECK(values == c.num_tokens() * c.values_per_token());
  CHECK(differ == 0);
}

struct TempDir {
  std::filesystem::path path = std::filesystem::temp_directory_path() /
                               ("kvstream_cli_independent_" + std::to_string(::getpid()));
  TempDir() { std::filesystem::create_directories(path); }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};
}  // namespace

TEST_CASE("numpy reads the bundled kv_128.safetensors as kvstream does", "[cli][format][numpy]") {
  const std::string file = kvstream::testing::source_path("tests/codec/data/kv_128.safetensors");
  check_same_as_kvstream(file);
  const json np = numpy_read(file);
  CHECK(np["tokens"] == 128);
  CHECK(np["dtype"] == "F16");
  CHECK(np["tensors"]["tokens"]["dtype"] == "I32");
  CHECK(np["tensors"]["k.4"]["shape"] == json::array({128, 4, 8}));
}

TEST_CASE("numpy reads kvstream prefill output: run.c's K/V rows, and f16/bf16 rounded as numpy rounds",
          "[cli][format][numpy]") {
  const TempDir dir;
  // The golden prompt: numpy's values are run.c's key/value cache rows (keys after RoPE).
  const json golden = json::parse(std::ifstream(kvstream::testing::golden_path()))["kv"];
  const std::string f32 = dir / "golden_f32.safetensors";
  run_ok(kv() + " prefill " + model_args() + " --prompt " + quote(golden["prompt"].get<std::string>()) + " -o " + quote(f32));
  check_same_as_kvstream(f32);
  const json np = numpy_read(f32, "--values");
  CHECK(np["token_ids"] == golden["prompt_ids"]);
  const int kv_dim = golden["kv_dim"];
  double worst = 0;
  for (const auto& e : golden["entries"]) {
    const int l = e["layer"], pos = e["pos"];
    for (int i = 0; i < kv_dim; ++i) {
      worst = std::max(worst, std::fabs(np["k"][l][pos * kv_dim + i].get<double>() - e["key"][i].get<double>()));
      worst = std::max(worst, std::fabs(np["v"][l][pos * kv_dim + i].get<double>() - e["value"][i].get<double>()));
    }
  }
  INFO("max |numpy-read value - run.c| = " << worst);
  CHECK(worst <= 1e-4);

  // 300 tokens of real text in f32, f16 and bf16: the 2-byte files hold numpy's rounding of the f32 one.
  const std::string text = " --text-file " + quote(kvstream::testing::text_path()) + " --max-tokens 300";
  run_ok(kv() + " prefill " + model_args() + text + " -o " + quote(dir / "p_f32.safetensors"));
  for (const char* dtype : {"f16", "bf16"}) {
    const std::string f = dir / (std::string("p_") + dtype + ".safetensors");
    run_ok(kv() + " prefill " + model_args() + text + " --dtype " + dtype + " -o " + quote(f));
    check_same_as_kvstream(f);
    const json r = numpy_read(f, "--rounded-from " + quote(dir / "p_f32.safetensors"));
    INFO(dtype);
    CHECK(r["values_compared"] == 300 * 2 * 5 * 32);
    CHECK(r["rounding_mismatches"] == 0);
  }
}

TEST_CASE("iperf3 -R through kvstream relay gets a constant link's capacity within 5%", "[cli][netsim][iperf3]") {
  const json r = run_json("KVSTREAM=" + kv() + " DELAY_MS=5 " +
                          quote(kvstream::testing::source_path("scripts/iperf3_relay.sh")) + " const:40mbit 3");
  INFO(r.dump());
  CHECK(r["shaped"] == true);
  CHECK(std::fabs(r["capacity_mbps"].get<double>() - 40.0) < 0.1);
  CHECK(std::fabs(r["ratio"].get<double>() - 1.0) <= 0.05);
  // iperf3 counted no more than the relay delivered on the data connection.
  CHECK(r["iperf3_received_bytes"].get<uint64_t>() <= r["relay_data_connection_bytes"].get<uint64_t>());
}
