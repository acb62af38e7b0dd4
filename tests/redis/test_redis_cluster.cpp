// The Redis tier against a real Redis Cluster (tests/redis/cluster_fixture.h): routing (slots,
// MOVED, ASK), the context values, a value whose CRC fails, WAIT, the tier below a TieredStore,
// several stateless senders, save-back, and a cluster that cannot be reached.
#include <catch2/catch.hpp>

#include <asio.hpp>
#include <filesystem>
#include <set>
#include <thread>

#include "model/model.h"
#include "store/redis_source.h"
#include "store/save_back.h"
#include "bench/serve_bench.h"
#include "store/tiered_store.h"
#include "streamer/receiver.h"
#include "streamer/sender.h"
#include "tests/redis/cluster_fixture.h"
#include "tests/test_data.h"

using namespace kvstream;
using namespace kvstream::store;
using kvstream::testing::SmallContext;
using kvstream::testing::TestCluster;

namespace {

const PrefixHasher& hasher() {
  static const PrefixHasher h(64, "stories260K");
  return h;
}

// Stores the small context (and its profile) under its prefix key in `tier`.
PrefixKey put_small(RedisTier& tier) {
  const auto& c = SmallContext::get();
  tier.put_profile(streamer::hash_hex(codec::fnv1a64(c.profile_bytes)), c.profile_bytes);
  const auto chain = hasher().chain(c.tokens);
  tier.put_context(chain.back(), chain, c.kvs);
  return chain.back();
}

struct RedisSender {
  RedisSender(const std::string& tenant, uint64_t mem_bytes = 0) {
    tier = std::make_shared<RedisTier>(TestCluster::get().options(tenant));
    RedisSourceOptions ro;
    ro.mem_bytes = mem_bytes;
    source = std::make_shared<RedisContextSource>(tier, ro);
    streamer::SenderOptions so;
    so.source = source;
    so.insecure = true;  // these tests are about the store, not authentication
    sender = std::make_unique<streamer::Sender>(so);
    sender->start();
  }
  std::shared_ptr<RedisTier> tier;
  std::shared_ptr<RedisContextSource> source;
  std::unique_ptr<streamer::Sender> sender;
};

std::string node_id(redis::Cluster& c, const redis::Endpoint& ep) { return c.exec_at(ep, {"CLUSTER", "MYID"}).str; }

streamer::ReceiveOutcome fetch(uint16_t port, const PrefixKey& key, const std::string& policy,
                               std::vector<std::string>* warnings = nullptr) {
  static const auto model = model::Model::load(kvstream::testing::model_path());
  streamer::ReceiverOptions ro;
  ro.port = port;
  ro.context = key.hex();
  ro.slo_s = 10;
  ro.policy = streamer::parse_policy(policy);
  ro.model = &model;
  ro.stall_timeout_s = 5;
  if (warnings) ro.on_warning = [warnings](const std::string& w) { warnings->push_back(w); };
  return streamer::receive(ro);
}

// `sessions` verified fetches of the small context from the senders on `ports`.
ServeBenchOptions bench_of(std::vector<uint16_t> ports, const PrefixKey& key, size_t receivers, size_t sessions) {
  ServeBenchOptions bo;
  for (uint16_t p : ports) bo.senders.emplace_back("127.0.0.1", p);
  bo.contexts = {key.hex()};
  bo.receivers = receivers;
  bo.sessions = sessions;
  bo.duration_s = 60;
  bo.expected[key.hex()] = SmallContext::get().reader;
  return bo;
}

uint16_t closed_port() {
  asio::io_context io;
  asio::ip::tcp::acceptor a(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();  // closed when `a` goes
}

}  // namespace

TEST_CASE("keys go to their slot's master, and our slots are the server's", "[cluster]") {
  redis::Cluster c(TestCluster::get().options("t-route").cluster);
  REQUIRE(c.slot_ranges().size() >= 3);
  std::vector<redis::Request> puts;
  for (int i = 0; i < 200; ++i) {
    const std::string k = "t-route:" + std::to_string(i) + (i % 3 == 0 ? "{tag}" : "");
    puts.push_back({{"SET", k, "v" + std::to_string(i)}, false, 1});
  }
  const auto replies = c.run(puts);
  for (const auto& r : replies) REQUIRE(r.type == redis::Reply::Type::kStatus);
  CHECK(c.stats().moved == 0);  // the discovered map was right for every key
  for (int i = 0; i < 200; i += 7) {
    const std::string& k = puts[size_t(i)].argv[1];
    const uint16_t slot = redis::key_slot(k);
    // The server computes the same slot, and the master our map names holds the key.
    CHECK(c.exec({"CLUSTER", "KEYSLOT", k}).integer == slot);
    const auto direct = c.exec_at(c.master_of(slot), {"GET", k});
    CHECK(direct.str == "v" + std::to_string(i));
  }
}

TEST_CASE("a slot being migrated: ASK is followed with ASKING, then MOVED updates the slot map", "[cluster]") {
  auto opts = TestCluster::get().options("t-move").cluster;
  redis::Cluster admin(opts), stale(opts);  // `stale` keeps the slot map it discovered
  const std::string key = "kvs:{t-move:moving}:x";
  const uint16_t slot = redis::key_slot(key);
  admin.exec({"SET", key, "payload"});
  const redis::Endpoint from = admin.master_of(slot);
  redis::Endpoint to;
  for (const auto& r : admin.slot_ranges())
    if (r.nodes.front() != from) to = r.nodes.front();
  REQUIRE(!to.host.empty());
  const std::string from_id = node_id(admin, from), to_id = node_id(admin, to);
  const std::string s = std::to_string(slot);
  REQUIRE(admin.exec_at(to, {"CLUSTER", "SETSLOT", s, "IMPORTING", from_id}).ok());
  REQUIRE(admin.exec_at(from, {"CLUSTER", "SETSLOT", s, "MIGRATING", to_id}).ok());
  const auto migrate = [&](const std::string& k) {
    const auto r = admin.exec_at(from, {"MIGRATE", to.host, std::to_string(to.port), k, "0", "5000"});
    REQUIRE(r.ok());
  };
  migrate(key);  // the key moved, the slot not yet: its old master answers ASK
  REQUIRE(admin.exec_at(from, {"GET", key}).str.rfind("ASK ", 0) == 0);
  const auto asked = stale.exec({"GET", key}, true);
  CHECK(asked.str == "payload");
  CHECK(stale.stats().ask == 1);
  CHECK(stale.master_of(slot) == from);  // ASK is one-shot: the map is unchanged

  // Finish the migration (every key of the slot, then the slot itself on every master).
  for (;;) {
    const auto keys = admin.exec_at(from, {"CLUSTER", "GETKEYSINSLOT", s, "100"});
    if (keys.elements.empty()) break;
    for (const auto& k : keys.elements) migrate(k.str);
  }
  for (const auto& r : admin.slot_ranges()) REQUIRE(admin.exec_at(r.nodes.front(), {"CLUSTER", "SETSLOT", s, "NODE", to_id}).ok());
  const auto moved = stale.exec({"GET", key}, true);
  CHECK(moved.str == "payload");
  CHECK(stale.stats().moved >= 1);
  // The redirect refreshed the slot map (CLUSTER SLOTS from a node that has seen the change).
  for (int i = 0; i < 50 && stale.master_of(slot) != to; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    stale.refresh();
  }
  CHECK(stale.master_of(slot) == to);
  CHECK(stale.exec({"SET", key, "after"}).ok());
  CHECK(admin.exec_at(to, {"GET", key}).str == "after");
}

TEST_CASE("a context's values: manifest, every blob, the container, prefix lookup, tenants", "[cluster]") {
  const auto& c = SmallContext::get();
  for (const auto layout : {redis::Layout::kChunk, redis::Layout::kContext}) {
    const std::string tenant = std::string("t-values-") + redis::layout_name(layout);
    auto o = TestCluster::get().options(tenant);
    o.layout = layout;
    RedisTier tier(o);
    const PrefixKey key = put_small(tier);
    const auto m = tier.meta(key);
    REQUIRE(m);
    CHECK(m->layout == layout);
    CHECK(m->manifest.token_ids == c.tokens);
    const auto& info = c.reader->info();
    REQUIRE(m->manifest.chunks.size() == info.num_chunks);
    std::vector<std::pair<uint32_t, int>> all;
    std::set<uint16_t> slots;
    for (uint32_t ch = 0; ch < info.num_chunks; ++ch)
      for (int l = 0; l < int(info.ladder.size()); ++l) {
        all.emplace_back(ch, l);
        if (l != m->text_level) slots.insert(redis::key_slot(tier.blob_key(key, layout, ch, uint32_t(l))));
      }
    const auto got = tier.blobs(key, *m, all);
    for (size_t i = 0; i < all.size(); ++i) {
      REQUIRE(got[i].status == BlobRead::Status::kOk);
      const auto want = c.reader->blob(all[i].first, all[i].second);
      CHECK(std::equal(want.begin(), want.end(), got[i].bytes.begin(), got[i].bytes.end()));
    }
    // co-located: one slot for the whole context; spread: one per chunk
    if (layout == redis::Layout::kContext) CHECK(slots.size() == 1);
    else CHECK(slots.size() > 1);
    CHECK(tier.container(key, *m) == c.kvs);
    const auto rec = tier.get(key);
    REQUIRE(rec);
    CHECK(rec->payload == c.kvs);
    CHECK(rec->tokens == c.tokens);

    // The longest stored prefix of a request, through the index: a shorter request, a diverging one.
    std::vector<int32_t> shorter(c.tokens.begin(), c.tokens.begin() + 100);
    auto hit = tier.match(shorter, hasher().chain(shorter));
    REQUIRE(hit);
    CHECK(hit->key == key);
    CHECK(hit->matched == 100);
    std::vector<int32_t> diverging(c.tokens.begin(), c.tokens.begin() + 70);
    diverging.insert(diverging.end(), {7, 7, 7, 7});
    hit = tier.match(diverging, hasher().chain(diverging));
    REQUIRE(hit);
    CHECK(hit->matched == 70);
    std::vector<int32_t> other(40, 5);
    CHECK_FALSE(tier.match(other, hasher().chain(other)));

    // Tenants never see each other's keys.
    RedisTier stranger(TestCluster::get().options(tenant + "-other"));
    CHECK_FALSE(stranger.meta(key));
    CHECK_FALSE(stranger.match(shorter, hasher().chain(shorter)));
  }
}

TEST_CASE("a value whose CRC fails is detected, never served, and its chunk is fetched as text", "[cluster]") {
  const auto& c = SmallContext::get();
  RedisSender s("t-crc");
  const PrefixKey key = put_small(*s.tier);
  auto m = s.tier->meta(key);
  REQUIRE(m);
  // Flip bytes inside chunk 1's level-0 value, in Redis.
  const std::string victim = s.tier->blob_key(key, m->layout, 1, 0);
  REQUIRE(s.tier->cluster().exec({"SETRANGE", victim, "200", "XYZ"}).ok());

  // The receiver gets an empty blob for it, fetches it as text and recomputes it with the model.
  std::vector<std::string> warnings;
  const auto out = fetch(s.sender->port(), key, "fixed:0", &warnings);
  CHECK(out.kv.tokens == c.tokens);
  REQUIRE(out.result.chunks.size() == c.reader->info().num_chunks);
  CHECK(out.result.chunks[1].fallback == "text");
  for (size_t i = 0; i < out.result.chunks.size(); ++i)
    if (i != 1) CHECK(out.result.chunks[i].fallback.empty());
  CHECK(warnings.size() == 1);
  CHECK(s.source->stats().unservable == 1);
  CHECK(s.tier->stats().corrupt == 1);
  // The corrupt value was deleted from the cluster: a later read is a plain miss.
  CHECK(s.tier->cluster().exec({"GET", victim}, true).type == redis::Reply::Type::kNil);
  const std::pair<uint32_t, int> which{1, 0};
  CHECK(s.tier->blobs(key, *m, std::span(&which, 1))[0].status == BlobRead::Status::kMissing);

  // Byte for byte: nothing served differs from the original container.
  const auto res = run_serve_bench(bench_of({s.sender->port()}, key, 4, 12));
  CHECK(res.sessions_ok == 12);
  CHECK(res.wrong_kv == 0);
  CHECK(res.text_fallbacks == 12);
}

TEST_CASE("WAIT: a write that too few replicas acknowledge is not reported as stored", "[cluster]") {
  auto o = TestCluster::get().options("t-wait");
  o.wait_replicas = 2;  // every master has one replica
  o.wait_timeout_s = 0.2;
  RedisTier tier(o);
  const auto& c = SmallContext::get();
  const auto chain = hasher().chain(c.tokens);
  try {
    tier.put_context(chain.back(), chain, c.kvs);
    FAIL("a write acknowledged by 1 of 2 replicas was reported stored");
  } catch (const kvstream::Error& e) {
    CHECK(e.code() == ErrorCode::kUnavailable);
    CHECK(std::string(e.what()).find("not acknowledged") != std::string::npos);
  }
  CHECK(tier.cluster().stats().not_acknowledged > 0);
  o.wait_replicas = 1;
  RedisTier ok(o);
  CHECK(ok.put_context(chain.back(), chain, c.kvs) > c.kvs.size());
  CHECK(ok.meta(chain.back()));
}

TEST_CASE("the Redis tier below memory and disk: write-through, a shared hit is kept locally", "[cluster]") {
  const auto& c = SmallContext::get();
  auto tier = std::make_shared<RedisTier>(TestCluster::get().options("t-tiered"));
  const auto base = std::filesystem::temp_directory_path() / ("kvstream-redis-tiered-" + std::to_string(::getpid()));
  std::filesystem::remove_all(base);
  StoreConfig sc;
  sc.mem_bytes = 4 << 20;
  sc.disk_bytes = 4 << 20;
  sc.domain = "stories260K";
  sc.lower = tier;
  sc.dir = (base / "node-a").string();
  PrefixKey key;
  {
    TieredStore a(sc);
    key = a.put(c.tokens, c.kvs);
    CHECK(a.stats().shared_puts == 1);
    CHECK(a.put({1, 2, 3}, {9, 9, 9}) != key);  // not a container: kept locally, not written through
    CHECK(a.stats().shared_puts == 1);
    CHECK(a.stats().shared_errors == 0);
  }
  // Another serving node with empty local tiers finds it in the shared tier.
  sc.dir = (base / "node-b").string();
  TieredStore b(sc);
  std::vector<int32_t> request = c.tokens;
  request.insert(request.end(), {11, 12, 13});
  const auto hit = b.get(request);
  REQUIRE(hit);
  CHECK(hit->tier == Tier::Shared);
  CHECK(hit->matched_tokens == c.tokens.size());
  CHECK(hit->record->payload == c.kvs);
  CHECK(b.where(key) == Tier::Memory);  // kept locally: the next hit is a memory hit
  CHECK(b.get(request)->tier == Tier::Memory);
  const auto st = b.stats();
  CHECK(st.hits_shared == 1);
  CHECK(st.hits_mem == 1);
  CHECK(st.misses == 0);
  std::vector<int32_t> unknown(80, 3);
  CHECK_FALSE(b.get(unknown));
  CHECK(b.stats().misses == 1);
  std::filesystem::remove_all(base);
}

TEST_CASE("several stateless senders serve the same stored contexts", "[cluster]") {
  const auto& c = SmallContext::get();
  RedisSender one("t-scale"), two("t-scale", 1 << 20);  // the second with a memory tier
  const PrefixKey key = put_small(*one.tier);
  auto bo = bench_of({one.sender->port(), two.sender->port()}, key, 8, 40);
  bo.window = 2;
  const auto res = run_serve_bench(bo);
  CHECK(res.sessions_ok == 40);
  CHECK(res.sessions_failed == 0);
  CHECK(res.wrong_kv == 0);
  CHECK(res.text_fallbacks == 0);
  CHECK(res.chunks == 40 * c.reader->info().num_chunks);
  REQUIRE(res.chunks_per_sender.size() == 2);
  for (const auto& [s, n] : res.chunks_per_sender) CHECK(n == 20 * c.reader->info().num_chunks);
  CHECK(one.source->stats().mem_hits == 0);
  CHECK(two.source->stats().mem_hits > 0);  // the memory tier kept what it read
}

TEST_CASE("recv's save-back into Redis: the entry is served by key by any sender", "[cluster]") {
  const auto& c = SmallContext::get();
  RedisSender s("t-saveback");
  const PrefixKey original = put_small(*s.tier);
  const auto first = fetch(s.sender->port(), original, "text");  // exact recompute
  RedisTier other(TestCluster::get().options("t-saveback-2"));
  const auto saved = save_back_redis(first.kv, *first.profile, other);
  CHECK(saved.key == hasher().key_of(c.tokens));
  CHECK(saved.tokens == c.tokens.size());
  const auto rec = other.get(saved.key);
  REQUIRE(rec);
  CHECK(rec->tokens == c.tokens);
  const auto r = codec::ContainerReader::parse(rec->payload);  // a complete, valid container
  CHECK(r.info().num_tokens == c.tokens.size());
  CHECK(other.profile(streamer::hash_hex(r.info().profile_hash)));
}

TEST_CASE("a cluster that cannot be reached: a clear kUnavailable error, fast", "[cluster]") {
  const uint16_t port = closed_port();
  const std::string uri = "redis://127.0.0.1:" + std::to_string(port);
  const auto t0 = std::chrono::steady_clock::now();
  try {
    RedisTier tier(parse_redis_uri(uri));
    FAIL("connected to a closed port");
  } catch (const kvstream::Error& e) {
    CHECK(e.code() == ErrorCode::kUnavailable);
    CHECK(std::string(e.what()).find("127.0.0.1:" + std::to_string(port)) != std::string::npos);
  }
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
}
