// The fast parts of the reliability suite (scripts/bench_reliability.sh QUICK=1 runs the same
// commands): `kvstream bench reliability` against a `kvstream send` process with authentication
// on: 280 hostile clients (>= 100 connections open at once, of all seven kinds) while 4 honest
// receivers fetch; 8 concurrent honest receivers; 10 cuts, 10 corruptions and 2 stalls through the
// relay's fault mode. Asserted: every honest fetch bit-exact against a local decode of its plan,
// the sender's RSS under the stated bound (256 MiB with these budgets), no wrong cache and no hang
// past the timeouts. The TTFT ratios are reported (they are timings: the full suite states them).
// In a sanitizer build the RSS bound is reported, not asserted: ASan's shadow memory and its
// 256 MiB free quarantine are the instrumentation's, not the sender's (the plain build asserts it),
// and at least 40 hostile connections must be open at once instead of 100 (the instrumented
// hostile clients open them ~3x slower against the sender's 2 s handshake timeout).
#include <catch2/catch.hpp>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "streamer/auth.h"
#include "tests/cli/send_process.h"
#include "tests/cli/shell.h"
#include "tests/streamer/fixture.h"

using kvstream::testing::quote;
using kvstream::testing::SendProcess;
using kvstream::testing::shell;
using kvstream::testing::slurp;
using kvstream::testing::StreamFixture;

namespace {

#ifdef KVSTREAM_SANITIZED
constexpr bool kRssIsTheSenders = false;
constexpr int kRequiredOpen = 40;  // instrumented clients and sender are ~3x slower: less load at once
#else
constexpr bool kRssIsTheSenders = true;
constexpr int kRequiredOpen = 100;
#endif

// The fetches of a reliability report that did not end bit-exact, with their errors (to INFO).
std::string inexact_fetches(const nlohmann::json& fetches) {
  std::string out;
  auto visit = [&](const nlohmann::json& f) {
    if (f.is_object() && f.contains("exact") && !f["exact"].get<bool>()) out += f.dump() + "\n";
  };
  for (const auto& f : fetches) {
    if (f.is_array()) for (const auto& g : f) visit(g);
    else if (f.is_object() && !f.contains("exact")) for (const auto& [k, g] : f.items()) for (const auto& h : g) visit(h);
    else visit(f);
  }
  return out;
}

}  // namespace

TEST_CASE("reliability suite, fast parts: hostile load, honest load and faults against a sender process",
          "[cli][reliability]") {
  const auto& fx = StreamFixture::get();
  // The never-reading hostile connections belong to tenant mallory (same contexts).
  kvstream::streamer::add_tenant(fx.keys_file, "mallory");
  std::filesystem::create_directory_symlink(fx.dir, fx.root + "/mallory");
  SendProcess send("--cache-bytes 64M --memory-budget-bytes 64M --max-queued-bytes 4M --max-pending 2048 "
                   "--write-timeout-s 2 --handshake-timeout-s 2",
                   300);
  const std::string out = (std::filesystem::temp_directory_path() / ("kvstream-rel-" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(out);
  const std::string base = quote(kvstream::testing::kvstream_bin()) + " bench reliability --dir " + quote(fx.root) +
                           " --keys " + quote(fx.keys_file) + " --tenants test --hostile-tenant mallory --model " +
                           quote(kvstream::testing::model_path()) + " --connect 127.0.0.1:" + send.port +
                           " --sender-pid " + std::to_string(send.pid) + " --rss-bound-bytes 256M";
  auto run = [&](const std::string& part, const std::string& args) {
    const std::string path = out + "/" + part + ".json";
    const auto [code, text] = shell(base + " --part " + part + " " + args + " -o " + quote(path) + " 2>&1");
    INFO(text);
    REQUIRE(code == 0);
    return nlohmann::json::parse(slurp(path));
  };
  const auto hostile = run("hostile", "--hostile-connections 280 --required-open " + std::to_string(kRequiredOpen) +
                                       " --honest-receivers 4 --rounds 1");
  INFO(hostile["pass"].dump() << " open " << hostile["hostile_open_during_fetches"].dump() << " rss "
                              << hostile["sender_rss"].dump() << " ttft ratio " << hostile["max_ttft_ratio"]);
  INFO("inexact: " << inexact_fetches(hostile["fetches"]));
  CHECK(hostile["pass"]["all_exact"] == true);
  if (kRssIsTheSenders) CHECK(hostile["pass"]["rss_within_bound"] == true);
  CHECK(hostile["pass"]["hostile_at_once"] == true);
  for (const auto& [kind, s] : hostile["hostile_by_kind"][0].items()) CHECK(s["connects"].get<int>() > 0);

  const auto honest = run("honest", "--receivers 8 --single-reps 1");
  INFO(honest["pass"].dump() << " max ttft ratio " << honest["max_ttft_ratio"]);
  INFO("inexact: " << inexact_fetches(honest["single_fetches"]) << inexact_fetches(honest["concurrent_fetches"]));
  CHECK(honest["pass"]["all_exact"] == true);
  if (kRssIsTheSenders) CHECK(honest["pass"]["rss_within_bound"] == true);

  const auto faults = run("faults", "--cuts 10 --corruptions 10 --stalls 2 --stall-timeout-s 1");
  for (const auto& [kind, k] : faults["kinds"].items()) {
    INFO(kind << ": " << k["errors_by_code"].dump());
    CHECK(k["wrong_cache"] == 0);
    CHECK(k["hung"] == 0);
    CHECK(k["untyped_error"] == 0);
    CHECK(k["exact_cache"].get<int>() + k["clear_error"].get<int>() == k["runs"].get<int>());
  }
  CHECK(faults["pass"]["never_wrong_never_hung"] == true);
  std::filesystem::remove_all(out);
}
