// Concurrent readers, writers, the prefetcher and the async save queue on one store (run this
// suite under -DKVSTREAM_SANITIZE=thread too), and the save queue's bound.
#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "codec/rope.h"
#include "store/async_saver.h"
#include "store/context_codec.h"
#include "store/prefetcher.h"
#include "store/save_queue.h"
#include "store/tiered_store.h"
#include "tests/store/store_test_util.h"

using namespace kvstream::store;
using namespace kvstream::store::testing;

TEST_CASE("concurrent readers and writers see only whole, correct records", "[store][concurrency]") {
  TempDir dir;
  StoreConfig c;
  c.dir = dir.path;
  c.mem_bytes = 24000;
  c.disk_bytes = 60000;
  c.chunk_tokens = 8;
  c.fsync = false;
  c.policy = PolicyKind::Scheduler;
  TieredStore s(c);
  Prefetcher prefetcher(s);
  SaveQueue saves(4, Overflow::Block, 2);
  constexpr int kWriters = 3, kReaders = 3, kTurns = 40;
  std::atomic<int> bad{0}, hits{0}, writers_left{kWriters};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (int turn = 0; turn < kTurns; ++turn) {
        // Conversations of this writer grow turn by turn; saves go through the async queue.
        const uint32_t conv_id = w * 100 + turn % 7;
        auto t = conversation(conv_id, 10 + 5 * (turn / 7 + 1));
        saves.push([&s, t] { s.put(t, payload_for(t, 300 + t.size() * 20)); });
        if (turn % 5 == 0) {
          std::vector<PrefixKey> la;
          for (int i = 0; i < 4; ++i) la.push_back(s.hasher().key_of(conversation(w * 100 + (turn + i) % 7, 10 + 5 * (turn / 7 + 1))));
          prefetcher.schedule(la);
        }
      }
      --writers_left;
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&, r] {
      for (int i = 0; i < 150 || writers_left > 0; ++i) {
        const uint32_t conv_id = ((r + i) % kWriters) * 100 + i % 7;
        const auto want = conversation(conv_id, 80);
        if (auto f = s.get(want)) {
          ++hits;
          const auto& rec = *f->record;
          if (!std::equal(want.begin(), want.begin() + f->matched_tokens, rec.tokens.begin()) ||
              rec.payload != payload_for(rec.tokens, rec.payload.size()))
            ++bad;
        }
        if (i % 10 == 0) s.stats();
      }
    });
  }
  for (auto& t : threads) t.join();
  saves.flush();
  prefetcher.wait_idle();
  // Every conversation's last save is stored somewhere unless it was evicted: most must hit.
  int final_hits = 0;
  for (int w = 0; w < kWriters; ++w)
    for (uint32_t i = 0; i < 7; ++i)
      if (auto f = s.get(conversation(w * 100 + i, 80))) {
        ++final_hits;
        if (f->record->payload != payload_for(f->record->tokens, f->record->payload.size())) ++bad;
      }
  CHECK(final_hits > 0);
  CHECK(bad == 0);
  const auto st = s.stats();
  CHECK(st.peak_mem_used <= c.mem_bytes);
  CHECK(st.peak_disk_used <= c.disk_bytes);
  CHECK(st.corrupt_dropped == 0);
  CHECK(st.io_errors == 0);
  CHECK(saves.stats().completed == uint64_t(kWriters * kTurns));
  CHECK(dir_bytes(dir.path) == st.disk_used);
}

namespace {

// A gate the first job waits on, so the queue's contents are under the test's control.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false, entered = false;
  void enter_and_wait() {
    std::unique_lock lock(mu);
    entered = true;
    cv.notify_all();
    cv.wait(lock, [&] { return open; });
  }
  void wait_entered() {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return entered; });
  }
  void release() {
    std::lock_guard lock(mu);
    open = true;
    cv.notify_all();
  }
};

}  // namespace

TEST_CASE("save queue drop-oldest keeps at most capacity waiting and drops the oldest", "[store][savequeue]") {
  Gate gate;
  std::mutex mu;
  std::set<int> ran;
  auto job = [&](int id) {
    return [&, id] {
      if (id == 0) gate.enter_and_wait();
      std::lock_guard lock(mu);
      ran.insert(id);
    };
  };
  SaveQueue q(2, Overflow::DropOldest);
  q.push(job(0));
  gate.wait_entered();  // job 0 is running, the queue is empty
  for (int id = 1; id <= 5; ++id) {
    q.push(job(id));
    CHECK(q.depth() <= 2);
  }
  CHECK(q.depth() == 2);
  gate.release();
  q.flush();
  const auto st = q.stats();
  CHECK(st.dropped == 3);
  CHECK(st.completed == 3);
  CHECK(st.max_depth == 2);
  CHECK(ran == std::set<int>{0, 4, 5});  // the newest saves survive
}

TEST_CASE("save queue block mode applies back-pressure", "[store][savequeue]") {
  Gate gate;
  std::atomic<int> done{0};
  SaveQueue q(2, Overflow::Block);
  q.push([&] {
    gate.enter_and_wait();
    ++done;
  });
  gate.wait_entered();
  CHECK(q.try_push([&] { ++done; }));
  CHECK(q.try_push([&] { ++done; }));
  CHECK_FALSE(q.try_push([&] { ++done; }));  // full: push() would block here
  std::atomic<bool> pushed{false};
  std::thread blocked([&] {
    q.push([&] { ++done; });  // waits for a free slot
    pushed = true;
  });
  gate.release();
  blocked.join();
  CHECK(pushed);
  q.flush();
  const auto st = q.stats();
  CHECK(done == 4);
  CHECK(st.rejected == 1);
  CHECK(st.dropped == 0);
  CHECK(st.max_depth <= 2);
}

TEST_CASE("save queue counts failing jobs and keeps going", "[store][savequeue]") {
  std::atomic<int> ok{0};
  {
    SaveQueue q(8, Overflow::Block, 2);
    for (int i = 0; i < 10; ++i)
      q.push([&, i] {
        if (i % 3 == 0) throw std::runtime_error("encode failed");
        ++ok;
      });
    q.flush();
    CHECK(q.stats().failed == 4);
    CHECK(q.stats().completed == 6);
  }
  CHECK(ok == 6);
  CHECK_THROWS_AS(SaveQueue(0, Overflow::Block), std::invalid_argument);
  CHECK_THROWS_AS(parse_overflow("lifo"), std::invalid_argument);
}

TEST_CASE("async saver stores post-RoPE caches as pre-RoPE entries under their prefix key", "[store][savequeue]") {
  TempDir dir;
  StoreConfig c;
  c.dir = dir.path;
  c.fsync = false;
  TieredStore s(c);
  const auto codec = make_raw_codec({1, 1, 2}, "m", 10000.0f);
  kvstream::KvCache kv({1, 1, 2}, "m", 10000.0f, /*pre_rope=*/false);
  kv.resize(5);
  for (size_t t = 0; t < 5; ++t) {
    kv.tokens[t] = static_cast<int32_t>(10 + t);
    kv.k_row(0, t)[0] = 1.0f, kv.k_row(0, t)[1] = 0.5f;
    kv.v_row(0, t)[0] = float(t), kv.v_row(0, t)[1] = -float(t);
  }
  kvstream::KvCache expect = kv;
  kvstream::rope_remove_from_keys(expect, 0);
  PrefixKey key;
  {
    AsyncSaver saver(s, *codec, 2);
    key = saver.save(kv);
    saver.flush();
    CHECK(saver.stats().completed == 1);
  }
  auto f = s.get(key);
  REQUIRE(f);
  CHECK(f->record->tokens == kv.tokens);
  const kvstream::KvCache back = codec->decode(f->record->payload, 0, 0, 5);
  CHECK(back.keys_pre_rope);
  CHECK(back.k == expect.k);
  CHECK(back.v == kv.v);
}
