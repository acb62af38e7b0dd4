// The CLI parts of the library issue, run as processes: `kvstream profile --kv` (a model-free
// profile from KV dumps alone) and the exit code of each error class (README, "Exit codes").
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include "codec/profile.h"
#include "tests/cli/shell.h"
#include "tests/test_data.h"

using kvstream::testing::quote;
using kvstream::testing::shell;

namespace {
std::string kv_bin() { return quote(kvstream::testing::kvstream_bin()); }
std::string fixture_kv() {
  const std::string here = __FILE__;
  return here.substr(0, here.find_last_of('/')) + "/../codec/data/kv_128.safetensors";
}
}  // namespace

TEST_CASE("kvstream profile --kv builds a model-free profile from KV dumps", "[cli][kv_profile]") {
  const auto dir = std::filesystem::temp_directory_path() / ("kvstream-kvprof-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string out = (dir / "p.kvprofile").string();
  const auto [code, text] = shell(kv_bin() + " profile --kv " + quote(fixture_kv()) + " --snr-db 30,20 -o " + quote(out) + " 2>&1");
  REQUIRE(code == 0);
  REQUIRE_THAT(text, Catch::Contains("model-free") && Catch::Contains("snr30:") && Catch::Contains("snr20:"));
  const auto p = kvstream::codec::load_profile(out);
  REQUIRE(p.levels.size() == 2);
  REQUIRE(p.provenance["kv_profile"]["weighting"] == "rms");
  // --kv excludes the model options; without either there is nothing to build from.
  const auto both = shell(kv_bin() + " profile --kv " + quote(fixture_kv()) + " --model x -o " + quote(out) + " 2>&1");
  REQUIRE(both.first == 2);
  const auto none = shell(kv_bin() + " profile -o " + quote(out) + " 2>&1");
  REQUIRE(none.first == 2);
  REQUIRE_THAT(none.second, Catch::Contains("--kv"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("each error class has its exit code", "[cli][exit]") {
  // unavailable: nothing listens on port 1
  const auto refused = shell(kv_bin() + " recv --connect 127.0.0.1:1 --context x --slo-ms 100 2>&1");
  REQUIRE(refused.first == 23);
  REQUIRE_THAT(refused.second, Catch::Contains("error (unavailable)"));
  // not_found, corrupt
  REQUIRE(shell(kv_bin() + " kv-info /no/such/file.safetensors 2>&1").first == 12);
  REQUIRE(shell(kv_bin() + " decode " + quote(fixture_kv()) + " -o /dev/null 2>&1").first == 14);
  // usage
  REQUIRE(shell(kv_bin() + " recv 2>&1").first == 2);
  REQUIRE(shell(kv_bin() + " --help > /dev/null").first == 0);
}
