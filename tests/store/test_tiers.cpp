// Tiered store: capacity bounds, prefix hits, policy behaviour on scripted traces, prefetch.
#include <catch2/catch.hpp>

#include <random>

#include "store/tiered_store.h"
#include "tests/store/store_test_util.h"

using namespace kvstream::store;
using namespace kvstream::store::testing;

namespace {

// Ten tokens + payload: exactly 1000 stored bytes per entry.
constexpr size_t kEntry = 1000;
std::vector<int32_t> toks(uint32_t id) { return conversation(id, 10); }
std::vector<uint8_t> pay(uint32_t id) { return payload_for(toks(id), kEntry - kRecordOverhead - 40); }

StoreConfig small_config(const std::string& dir, PolicyKind p) {
  StoreConfig c;
  c.dir = dir;
  c.mem_bytes = 2 * kEntry;
  c.disk_bytes = 2 * kEntry;
  c.policy = p;
  c.chunk_tokens = 4;
  c.fsync = false;
  return c;
}

PrefixKey key(const TieredStore& s, uint32_t id) { return s.hasher().key_of(toks(id)); }
std::optional<Tier> where(const TieredStore& s, uint32_t id) { return s.where(key(s, id)); }

}  // namespace

TEST_CASE("a new turn that extends a conversation hits the stored prefix", "[store][tiers]") {
  TempDir dir;
  StoreConfig c;
  c.dir = dir.path;
  c.chunk_tokens = 16;
  c.fsync = false;
  TieredStore s(c);
  const auto conv = conversation(11, 100);
  const std::vector<int32_t> turn1(conv.begin(), conv.begin() + 40);
  const auto k1 = s.put(turn1, payload_for(turn1, 500));

  auto hit = s.get(conv);  // the longer request finds the 40 stored tokens
  REQUIRE(hit);
  CHECK(hit->matched_tokens == 40);
  CHECK(hit->record->tokens == turn1);
  CHECK(hit->record->payload == payload_for(turn1, 500));
  CHECK(hit->tier == Tier::Memory);

  // A request that diverges inside chunk 2 still reuses the 35 shared tokens.
  auto diverged = std::vector<int32_t>(conv.begin(), conv.begin() + 35);
  diverged.push_back(2);
  diverged.push_back(7);
  auto partial = s.get(diverged);
  REQUIRE(partial);
  CHECK(partial->matched_tokens == 35);

  // Unrelated and first-chunk-different requests miss.
  CHECK_FALSE(s.get(conversation(12, 100)));
  auto first_differs = conv;
  first_differs[0] ^= 1;
  CHECK_FALSE(s.match(first_differs));

  // Storing the extended conversation supersedes the shorter one (drop_prefixes).
  const auto k2 = s.put(conv, payload_for(conv, 500));
  CHECK_FALSE(s.where(k1));
  CHECK(s.where(k2) == Tier::Memory);
  auto next = conv;
  next.insert(next.end(), {5, 6, 7});
  auto hit2 = s.get(next);
  REQUIRE(hit2);
  CHECK(hit2->matched_tokens == 100);
  const auto st = s.stats();
  CHECK(st.hits_mem == 3);
  CHECK(st.misses == 1);
  CHECK(st.mem_entries == 1);
}

TEST_CASE("LRU scripted trace", "[store][policy]") {
  TempDir dir;
  TieredStore s(small_config(dir.path, PolicyKind::Lru));
  for (uint32_t id : {1u, 2u, 3u}) s.put(toks(id), pay(id));  // A B C: A demoted
  CHECK(where(s, 1) == Tier::Disk);
  auto a = s.get(toks(1));  // disk hit, promoted; B (least recent) demoted
  REQUIRE(a);
  CHECK(a->tier == Tier::Disk);
  CHECK(a->record->payload == pay(1));
  CHECK(where(s, 1) == Tier::Memory);
  CHECK(where(s, 2) == Tier::Disk);
  s.put(toks(4), pay(4));  // memory {C, A}: C least recent -> disk {B, C}
  CHECK(where(s, 3) == Tier::Disk);
  s.put(toks(5), pay(5));  // memory {A, D}: A -> disk, which drops B (least recent)
  CHECK(where(s, 4) == Tier::Memory);
  CHECK(where(s, 5) == Tier::Memory);
  CHECK(where(s, 1) == Tier::Disk);
  CHECK(where(s, 3) == Tier::Disk);
  CHECK_FALSE(where(s, 2));
  const auto st = s.stats();
  CHECK(st.hits_disk == 1);
  CHECK(st.promotions == 1);
  CHECK(st.dropped == 1);
  CHECK(count_files(dir.path, ".kvrec") == 2);
}

TEST_CASE("FIFO scripted trace evicts by insertion, not use", "[store][policy]") {
  TempDir dir;
  TieredStore s(small_config(dir.path, PolicyKind::Fifo));
  for (uint32_t id : {1u, 2u, 3u}) s.put(toks(id), pay(id));
  REQUIRE(s.get(toks(1)));  // promoted; memory {B, C} -> B (oldest) demoted
  CHECK(where(s, 2) == Tier::Disk);
  s.put(toks(4), pay(4));   // memory {C, A}: A is the oldest insertion -> disk {B, A}
  CHECK(where(s, 1) == Tier::Disk);
  s.put(toks(5), pay(5));   // memory {C, D}: C -> disk, dropping A (oldest)
  CHECK_FALSE(where(s, 1));
  CHECK(where(s, 2) == Tier::Disk);
  CHECK(where(s, 3) == Tier::Disk);
}

TEST_CASE("FIFO keeps a conversation's original insertion time across turns", "[store][policy]") {
  TempDir dir;
  auto c = small_config(dir.path, PolicyKind::Fifo);
  c.disk_bytes = 0;  // memory only: overflow drops
  c.mem_bytes = 2 * kEntry + 200;
  TieredStore s(c);
  s.put(toks(1), pay(1));  // conversation A
  s.put(toks(2), pay(2));  // conversation B
  // A's next turn replaces A's entry (new key) but keeps A's place in the FIFO.
  auto a2 = toks(1);
  a2.push_back(9);
  const auto ka2 = s.put(a2, payload_for(a2, kEntry - kRecordOverhead - 44));
  s.put(toks(3), pay(3));  // evicts the oldest conversation: A (its second turn)
  CHECK_FALSE(s.where(ka2));
  CHECK(where(s, 2) == Tier::Memory);
  CHECK(where(s, 3) == Tier::Memory);
}

TEST_CASE("scheduler-aware policy protects queued sessions and prefetches them", "[store][policy]") {
  TempDir dir;
  TieredStore s(small_config(dir.path, PolicyKind::Scheduler));
  s.set_lookahead({key(s, 2), key(s, 1)});  // B then A are queued
  s.put(toks(1), pay(1));
  s.put(toks(2), pay(2));
  s.put(toks(3), pay(3));  // C is not queued: memory keeps A and B, C goes to disk
  CHECK(where(s, 1) == Tier::Memory);
  CHECK(where(s, 2) == Tier::Memory);
  CHECK(where(s, 3) == Tier::Disk);
  s.put(toks(4), pay(4));  // D to disk too
  s.put(toks(5), pay(5));  // E: disk full of unqueued C, D -> least recent (C) dropped
  CHECK_FALSE(where(s, 3));
  CHECK(where(s, 4) == Tier::Disk);
  CHECK(where(s, 5) == Tier::Disk);
  // Now E and A are next: prefetch moves E up, demoting B (no longer queued), dropping D.
  s.set_lookahead({key(s, 5), key(s, 1)});
  CHECK(s.prefetch_window() == 2);
  CHECK(s.eviction_window() == 4);
  CHECK(s.prefetch() == 1);
  CHECK(where(s, 5) == Tier::Memory);
  CHECK(where(s, 1) == Tier::Memory);
  CHECK(where(s, 2) == Tier::Disk);
  CHECK_FALSE(where(s, 4));
  auto e = s.get(toks(5));
  REQUIRE(e);
  CHECK(e->tier == Tier::Memory);
  CHECK(e->record->payload == pay(5));
  CHECK(s.stats().prefetched == 1);
}

TEST_CASE("under LRU the same trace evicts queued sessions", "[store][policy]") {
  // Contrast for the scheduler test above: LRU demotes A although it is queued.
  TempDir dir;
  TieredStore s(small_config(dir.path, PolicyKind::Lru));
  s.set_lookahead({key(s, 2), key(s, 1)});
  for (uint32_t id : {1u, 2u, 3u}) s.put(toks(id), pay(id));
  CHECK(where(s, 1) == Tier::Disk);
  CHECK(where(s, 3) == Tier::Memory);
}

TEST_CASE("tier capacities are never exceeded under random operations", "[store][tiers]") {
  for (auto policy : {PolicyKind::Lru, PolicyKind::Fifo, PolicyKind::Scheduler}) {
    DYNAMIC_SECTION("policy " << policy_name(policy)) {
      TempDir dir;
      StoreConfig c;
      c.dir = dir.path;
      c.mem_bytes = 20000;
      c.disk_bytes = 50000;
      c.policy = policy;
      c.chunk_tokens = 8;
      c.fsync = false;
      TieredStore s(c);
      std::mt19937 rng(1234 + static_cast<int>(policy));
      std::vector<std::vector<int32_t>> convs;
      for (int op = 0; op < 400; ++op) {
        const int what = rng() % 10;
        if (what < 5 || convs.empty()) {
          const uint32_t id = rng() % 40;
          auto t = conversation(id, 5 + rng() % 200);
          // Sizes from tiny to larger than the memory tier (those must skip it).
          const size_t bytes = (rng() % 20 == 0) ? 25000 : 100 + rng() % 4000;
          s.put(t, payload_for(t, bytes));
          convs.push_back(std::move(t));
        } else if (what < 8) {
          const auto& t = convs[rng() % convs.size()];
          if (auto f = s.get(t)) {
            REQUIRE(f->matched_tokens <= t.size());
            REQUIRE(std::equal(t.begin(), t.begin() + f->matched_tokens, f->record->tokens.begin()));
            REQUIRE(f->record->payload == payload_for(f->record->tokens, f->record->payload.size()));
          }
        } else if (what == 8) {
          std::vector<PrefixKey> la;
          for (int i = 0; i < 6; ++i) la.push_back(s.hasher().key_of(convs[rng() % convs.size()]));
          s.set_lookahead(la);
          s.prefetch();
        } else {
          s.erase(s.hasher().key_of(convs[rng() % convs.size()]));
        }
        const auto st = s.stats();
        REQUIRE(st.mem_used <= c.mem_bytes);
        REQUIRE(st.disk_used <= c.disk_bytes);
        REQUIRE(dir_bytes(dir.path) == st.disk_used);  // files on disk are exactly the disk tier
        REQUIRE(count_files(dir.path, ".kvrec") == st.disk_entries);
      }
      const auto st = s.stats();
      CHECK(st.peak_mem_used <= c.mem_bytes);
      CHECK(st.peak_disk_used <= c.disk_bytes);
      CHECK(st.demotions > 0);
      CHECK(st.dropped > 0);
      CHECK(st.hits_mem + st.hits_disk > 0);
    }
  }
}

TEST_CASE("a reopened store adopts its disk tier", "[store][tiers]") {
  TempDir dir;
  auto c = small_config(dir.path, PolicyKind::Lru);
  {
    TieredStore s(c);
    for (uint32_t id : {1u, 2u, 3u, 4u}) s.put(toks(id), pay(id));  // 1, 2 on disk
  }
  TieredStore again(c);
  const auto st = again.stats();
  CHECK(st.recovered == 2);
  CHECK(st.disk_used == 2 * kEntry);
  auto f = again.get(toks(2));
  REQUIRE(f);
  CHECK(f->record->payload == pay(2));
  CHECK_FALSE(again.get(toks(3)));  // memory tier content is not durable
}
