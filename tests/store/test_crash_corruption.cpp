// Crash safety of disk writes (via the Env seam, in-process and by killing a forked child between
// write and rename) and detection of corrupt files on disk.
#include <catch2/catch.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "store/fault_env.h"
#include "store/tiered_store.h"
#include "tests/store/store_test_util.h"

using namespace kvstream::store;
using namespace kvstream::store::testing;

namespace {

constexpr size_t kEntry = 1000;
std::vector<int32_t> toks(uint32_t id) { return conversation(id, 10); }
std::vector<uint8_t> pay(uint32_t id) { return payload_for(toks(id), kEntry - kRecordOverhead - 40); }

StoreConfig one_in_memory(const std::string& dir, Env* env) {
  StoreConfig c;
  c.dir = dir;
  c.mem_bytes = kEntry;  // room for one entry: every second put demotes the first to disk
  c.disk_bytes = 10 * kEntry;
  c.chunk_tokens = 4;
  c.env = env;
  c.fsync = true;
  return c;
}

void flip_byte(const std::string& path, std::streamoff at) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  REQUIRE(f);
  f.seekg(at);
  char b = 0;
  f.read(&b, 1);
  b ^= 0x40;
  f.seekp(at);
  f.write(&b, 1);
}

}  // namespace

TEST_CASE("a crash at any step of a disk write never leaves a torn record", "[store][crash]") {
  // Crash points inside write_file_atomic; the entry is only durable once the rename happened.
  struct Case {
    const char* op;
    bool durable;
  };
  for (const Case cs : {Case{"open", false}, Case{"append", false}, Case{"sync", false},
                        Case{"close", false}, Case{"rename", false}, Case{"sync_dir", true}}) {
    DYNAMIC_SECTION("crash before " << cs.op) {
      TempDir dir;
      FaultInjectionEnv env;
      {
        TieredStore s(one_in_memory(dir.path, &env));
        s.put(toks(1), pay(1));
        s.put(toks(2), pay(2));  // 1 written to disk completely
        s.put(toks(3), pay(3));  // 2 written to disk completely
        REQUIRE(s.where(s.hasher().key_of(toks(1))) == Tier::Disk);
        const std::string victim = s.path_of(s.hasher().key_of(toks(3)));
        env.set_hook([&](const std::string& op, const std::string& path) {
          if (op == cs.op && (path.rfind(victim, 0) == 0 || op == "sync_dir")) throw SimulatedCrash(op);
        });
        CHECK_THROWS_AS(s.put(toks(4), pay(4)), SimulatedCrash);  // demoting 3 crashes
      }  // the "process" is gone; only the files remain
      const bool tmp_left = count_files(dir.path, kTempSuffix) > 0;
      TieredStore reopened(one_in_memory(dir.path, nullptr));
      const auto st = reopened.stats();
      CHECK(count_files(dir.path, kTempSuffix) == 0);
      CHECK(st.temp_files_removed == (tmp_left ? 1u : 0u));
      CHECK(st.corrupt_dropped == 0);
      CHECK(st.recovered == (cs.durable ? 3u : 2u));
      for (uint32_t id : {1u, 2u}) {
        auto f = reopened.get(toks(id));
        REQUIRE(f);
        CHECK(f->record->payload == pay(id));
      }
      auto three = reopened.get(toks(3));
      CHECK(bool(three) == cs.durable);
      if (three) CHECK(three->record->payload == pay(3));
    }
  }
}

TEST_CASE("killing the process between write and rename loses only that write", "[store][crash]") {
  TempDir dir;
  {
    TieredStore s(one_in_memory(dir.path, nullptr));
    s.put(toks(1), pay(1));
    s.put(toks(2), pay(2));  // 1 on disk
  }
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // Child: a real process that dies (no destructors, no cleanup) right before a rename.
    FaultInjectionEnv env;
    env.set_hook([](const std::string& op, const std::string&) {
      if (op == "rename") _exit(42);
    });
    TieredStore s(one_in_memory(dir.path, &env));  // adopts 1 from disk
    s.put(toks(5), pay(5));
    s.put(toks(6), pay(6));  // demotes 5: dies before its rename
    _exit(0);
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 42);
  CHECK(count_files(dir.path, kTempSuffix) == 1);  // the written, never renamed temp file

  TieredStore s(one_in_memory(dir.path, nullptr));
  CHECK(s.stats().temp_files_removed == 1);
  CHECK(count_files(dir.path, kTempSuffix) == 0);
  auto one = s.get(toks(1));
  REQUIRE(one);
  CHECK(one->record->payload == pay(1));
  CHECK_FALSE(s.get(toks(5)));
}

TEST_CASE("a corrupt disk file is detected, dropped and never served", "[store][corrupt]") {
  TempDir dir;
  auto c = one_in_memory(dir.path, nullptr);
  c.fsync = false;
  TieredStore s(c);
  for (uint32_t id : {1u, 2u, 3u}) s.put(toks(id), pay(id));  // 1, 2 on disk
  const std::string p1 = s.path_of(s.hasher().key_of(toks(1)));
  REQUIRE(std::filesystem::exists(p1));
  flip_byte(p1, 600);  // inside the payload
  CHECK_FALSE(s.get(toks(1)));
  auto st = s.stats();
  CHECK(st.corrupt_dropped == 1);
  CHECK(st.misses == 1);
  CHECK_FALSE(std::filesystem::exists(p1));
  CHECK_FALSE(s.where(s.hasher().key_of(toks(1))));
  CHECK(st.disk_used == kEntry);
  auto two = s.get(toks(2));  // the healthy neighbour is still served
  REQUIRE(two);
  CHECK(two->record->payload == pay(2));
}

TEST_CASE("prefetch also refuses corrupt files", "[store][corrupt]") {
  TempDir dir;
  auto c = one_in_memory(dir.path, nullptr);
  c.fsync = false;
  c.policy = PolicyKind::Scheduler;
  TieredStore s(c);
  for (uint32_t id : {1u, 2u}) s.put(toks(id), pay(id));  // 1 on disk
  const auto k1 = s.hasher().key_of(toks(1));
  flip_byte(s.path_of(k1), 20);  // inside the header (key)
  s.set_lookahead({k1});
  CHECK(s.prefetch() == 0);
  CHECK(s.stats().corrupt_dropped == 1);
  CHECK_FALSE(s.where(k1));
}

TEST_CASE("opening a store drops corrupt and truncated records, keeps foreign files", "[store][corrupt]") {
  TempDir dir;
  auto c = one_in_memory(dir.path, nullptr);
  c.fsync = false;
  std::string p1, p2;
  {
    TieredStore s(c);
    for (uint32_t id : {1u, 2u, 3u, 4u}) s.put(toks(id), pay(id));  // 1, 2, 3 on disk
    p1 = s.path_of(s.hasher().key_of(toks(1)));
    p2 = s.path_of(s.hasher().key_of(toks(2)));
  }
  flip_byte(p1, 5);
  std::filesystem::resize_file(p2, 500);
  { std::ofstream(dir.path + "/notes.txt") << "not a record"; }
  auto other_model = c;
  other_model.domain = "another-model";
  TieredStore s(other_model);  // the remaining record belongs to the default domain: left alone
  CHECK(s.stats().recovered == 0);
  CHECK(s.stats().corrupt_dropped == 2);
  CHECK_FALSE(std::filesystem::exists(p1));
  CHECK_FALSE(std::filesystem::exists(p2));
  CHECK(std::filesystem::exists(dir.path + "/notes.txt"));
  CHECK(count_files(dir.path, ".kvrec") == 1);
  TieredStore mine(c);
  CHECK(mine.stats().recovered == 1);
  REQUIRE(mine.get(toks(3)));
}

TEST_CASE("a failing disk write drops the entry and keeps the store consistent", "[store][crash]") {
  TempDir dir;
  FaultInjectionEnv env;
  TieredStore s(one_in_memory(dir.path, &env));
  env.set_hook([](const std::string& op, const std::string&) {
    if (op == "sync") throw IoError("injected: fsync failed");
  });
  s.put(toks(1), pay(1));
  s.put(toks(2), pay(2));  // demoting 1 fails: 1 is dropped, not half-written
  const auto st = s.stats();
  CHECK(st.io_errors == 1);
  CHECK(st.disk_used == 0);
  CHECK(count_files(dir.path, kTempSuffix) == 0);
  CHECK(count_files(dir.path, ".kvrec") == 0);
  CHECK_FALSE(s.get(toks(1)));
  REQUIRE(s.get(toks(2)));
}
