// The public fetch API (include/kvstream/transfer.h) over loopback with real data: a Transfer into
// a paged fp16 layout with a scrambled slot mapping equals the container's decode of the same plan
// converted to fp16; contiguous fp32 equals today's receiver bit for bit; max_tokens leaves the
// rest of the layout untouched; poll / wait_tokens / callbacks; and the typed failures (unknown
// context, nothing listening, cancel, a corrupt blob: an error, or a failed range when the caller
// asked for a partial result).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <random>

#include "codec/container.h"
#include "codec/half.h"
#include "kvstream/kvstream.h"
#include "streamer/receiver.h"
#include "streamer/sender.h"
#include "tests/api/fixture.h"

using Fixture = kvstream::testing::ApiFixture;
namespace ks = kvstream::streamer;

namespace {

struct RunningSender {
  explicit RunningSender(ks::SenderFaults faults = {}) {
    ks::SenderOptions so;
    so.dir = Fixture::get().dir;
    so.faults = faults;
    so.insecure = true;  // loopback tests of the data path; authentication has its own tests
    sender = std::make_unique<ks::Sender>(so);
    sender->start();
  }
  uint16_t port() const { return sender->port(); }
  std::unique_ptr<ks::Sender> sender;
};

kvstream::FetchOptions options(uint16_t port, const std::string& policy) {
  kvstream::FetchOptions o;
  o.port = port;
  o.context = "story";
  o.policy = policy;
  o.slo_ms = 10000;
  o.stall_timeout_s = 2;
  o.total_timeout_s = 30;
  return o;
}

// Paged [blocks, block_size, heads, dim] tensors per layer, K and V, filled with a sentinel.
struct PagedCache {
  PagedCache(const kvstream::KvShape& s, kvstream::Dtype dt, uint64_t blocks, uint32_t block_size)
      : shape(s), dtype(dt), blocks(blocks), block_size(block_size) {
    const size_t bytes = blocks * block_size * size_t(s.kv_dim()) * kvstream::element_bytes(dt);
    for (int l = 0; l < s.n_layers; ++l) {
      k.emplace_back(bytes, uint8_t(0xAB));
      v.emplace_back(bytes, uint8_t(0xAB));
    }
  }
  kvstream::KvLayout layout(std::vector<int64_t> slots) {
    std::vector<void*> kp, vp;
    for (auto& t : k) kp.push_back(t.data());
    for (auto& t : v) vp.push_back(t.data());
    return kvstream::KvLayout::paged(shape, dtype, kp, vp, blocks, block_size, std::move(slots));
  }
  const uint8_t* row(const std::vector<std::vector<uint8_t>>& t, int layer, int64_t slot) const {
    return t[size_t(layer)].data() + size_t(slot) * size_t(shape.kv_dim()) * kvstream::element_bytes(dtype);
  }
  kvstream::KvShape shape;
  kvstream::Dtype dtype;
  uint64_t blocks;
  uint32_t block_size;
  std::vector<std::vector<uint8_t>> k, v;
};

// A slot per token, scattered over `blocks` blocks in a shuffled order (seeded).
std::vector<int64_t> scrambled_slots(size_t tokens, uint64_t blocks, uint32_t block_size) {
  std::vector<int64_t> block_ids(blocks);
  std::iota(block_ids.begin(), block_ids.end(), 0);
  std::mt19937 rng(7);
  std::shuffle(block_ids.begin(), block_ids.end(), rng);
  std::vector<int64_t> slots(tokens);
  for (size_t t = 0; t < tokens; ++t) slots[t] = block_ids[t / block_size] * block_size + int64_t(t % block_size);
  return slots;
}

// The fp16 row of token t (layer l, K or V) as the container decodes the chunk's level.
std::vector<uint16_t> expected_f16(const kvstream::KvCache& decoded, int l, bool key, size_t row) {
  const float* src = key ? decoded.k_row(l, row) : decoded.v_row(l, row);
  std::vector<uint16_t> out(size_t(decoded.shape.kv_dim()));
  kvstream::f32_to_f16(src, out.data(), out.size());
  return out;
}

}  // namespace

TEST_CASE("a fetch into a paged fp16 layout equals the container's decode of the same plan", "[api][transfer]") {
  const auto& fx = Fixture::get();
  const auto reader = kvstream::codec::ContainerReader::open(fx.kvs_path);
  const auto& info = reader.info();
  RunningSender s;
  // A mixed plan: the best level, q8, the smallest level, ... one level per chunk.
  std::vector<std::string> names;
  for (const auto& L : info.ladder)
    if (L.method != kvstream::codec::Method::Text) names.push_back(L.name);
  std::string plan = "plan:";
  for (uint32_t c = 0; c < info.num_chunks; ++c) plan += (c ? "," : "") + names[(c * 3) % names.size()];
  const uint32_t block_size = 16;
  const uint64_t blocks = (info.num_tokens + block_size - 1) / block_size + 5;
  PagedCache cache(fx.profile.shape, kvstream::Dtype::F16, blocks, block_size);
  const auto slots = scrambled_slots(info.num_tokens, blocks, block_size);
  std::vector<kvstream::ChunkEvent> events;
  auto opt = options(s.port(), plan);
  opt.on_chunk = [&](const kvstream::ChunkEvent& e) { events.push_back(e); };
  const auto r = kvstream::fetch(opt, cache.layout(slots));
  REQUIRE(r.complete);
  REQUIRE(r.tokens == info.num_tokens);
  REQUIRE(r.token_ids == fx.kv.tokens);
  REQUIRE(events.size() == info.num_chunks);
  for (uint32_t c = 0; c < info.num_chunks; ++c) {
    const int level = info.level_index(names[(c * 3) % names.size()]);
    const auto d = kvstream::codec::decode_container(reader, &fx.profile, level, c, c + 1, false, 1);
    const size_t b = info.chunk_begin(c);
    for (size_t i = 0; i < d.num_tokens(); ++i)
      for (int l = 0; l < fx.profile.shape.n_layers; ++l) {
        const auto ek = expected_f16(d, l, true, i), ev = expected_f16(d, l, false, i);
        REQUIRE(std::memcmp(cache.row(cache.k, l, slots[b + i]), ek.data(), ek.size() * 2) == 0);
        REQUIRE(std::memcmp(cache.row(cache.v, l, slots[b + i]), ev.data(), ev.size() * 2) == 0);
      }
  }
  // The 5 spare blocks are untouched.
  std::vector<bool> used(blocks, false);
  for (auto sl : slots) used[size_t(sl) / block_size] = true;
  for (uint64_t bl = 0; bl < blocks; ++bl)
    if (!used[bl])
      REQUIRE(std::all_of(cache.row(cache.k, 0, int64_t(bl * block_size)),
                          cache.row(cache.k, 0, int64_t((bl + 1) * block_size)), [](uint8_t x) { return x == 0xAB; }));
}

TEST_CASE("a contiguous fp32 fetch equals today's receiver bit for bit", "[api][transfer]") {
  const auto& fx = Fixture::get();
  RunningSender s;
  ks::ReceiverOptions ro;
  ro.port = s.port();
  ro.context = "story";
  ro.slo_s = 10;
  ro.policy = ks::parse_policy("fixed:q8");
  const auto ref = ks::receive(ro);
  const size_t n = ref.kv.num_tokens(), kd = size_t(fx.profile.shape.kv_dim());
  std::vector<std::vector<float>> k(size_t(fx.profile.shape.n_layers), std::vector<float>(n * kd)), v = k;
  std::vector<void*> kp, vp;
  for (auto& t : k) kp.push_back(t.data());
  for (auto& t : v) vp.push_back(t.data());
  const auto r = kvstream::fetch(options(s.port(), "fixed:q8"),
                                 kvstream::KvLayout::contiguous(fx.profile.shape, kvstream::Dtype::F32, kp, vp, n));
  REQUIRE(r.complete);
  REQUIRE(r.plan == ref.result.plan);
  for (int l = 0; l < fx.profile.shape.n_layers; ++l) {
    REQUIRE(k[size_t(l)] == ref.kv.k[size_t(l)]);
    REQUIRE(v[size_t(l)] == ref.kv.v[size_t(l)]);
  }
}

TEST_CASE("max_tokens fetches the chunks of a prefix and writes nothing beyond it", "[api][transfer]") {
  const auto& fx = Fixture::get();
  RunningSender s;
  PagedCache cache(fx.profile.shape, kvstream::Dtype::BF16, 40, 16);
  const auto slots = scrambled_slots(fx.kv.num_tokens(), 40, 16);
  auto opt = options(s.port(), "fixed:q8");
  opt.max_tokens = 100;  // chunks 0 and 1 (64-token chunks); tokens 100..127 are not written
  auto t = kvstream::Transfer::start(opt, cache.layout(slots));
  REQUIRE(t->wait_tokens(100, 30));
  const auto r = t->wait();
  REQUIRE(r.tokens == 100);
  REQUIRE(r.token_ids.size() == 100);
  const auto st = t->poll();
  REQUIRE(st.done);
  REQUIRE(st.ok);
  REQUIRE(st.chunks_total == 2);
  REQUIRE(st.prefix_tokens == 100);
  for (size_t tok = 0; tok < fx.kv.num_tokens(); ++tok) {
    const uint8_t* row = cache.row(cache.v, 2, slots[tok]);
    const bool untouched = std::all_of(row, row + fx.profile.shape.kv_dim() * 2, [](uint8_t x) { return x == 0xAB; });
    REQUIRE(untouched == (tok >= 100));
  }
}

TEST_CASE("a fetch reports typed errors", "[api][transfer][failure]") {
  const auto& fx = Fixture::get();
  PagedCache cache(fx.profile.shape, kvstream::Dtype::F16, 40, 16);
  const auto layout = cache.layout(scrambled_slots(fx.kv.num_tokens(), 40, 16));
  auto code_of = [&](const kvstream::FetchOptions& o) {
    try {
      kvstream::fetch(o, layout);
    } catch (const kvstream::Error& e) {
      return e.code();
    }
    return kvstream::ErrorCode::kInternal;  // (no error: fails the REQUIREs below)
  };
  SECTION("unknown context") {
    RunningSender s;
    auto o = options(s.port(), "adaptive");
    o.context = "no-such-story";
    REQUIRE(code_of(o) == kvstream::ErrorCode::kUnknownContext);
  }
  SECTION("nothing listening") {
    uint16_t port;
    {
      RunningSender s;
      port = s.port();
    }
    REQUIRE(code_of(options(port, "adaptive")) == kvstream::ErrorCode::kUnavailable);
  }
  SECTION("a stalled sender") {
    ks::SenderFaults f;
    f.stall_at_chunk = 1;
    RunningSender s(f);
    auto o = options(s.port(), "fixed:q8");
    o.stall_timeout_s = 0.3;
    REQUIRE(code_of(o) == kvstream::ErrorCode::kStalled);
  }
  SECTION("options and layouts") {
    auto o = options(1, "text");  // no model to recompute text
    REQUIRE_THROWS_AS(kvstream::Transfer::start(o, layout), kvstream::Error);
    REQUIRE(code_of(o) == kvstream::ErrorCode::kInvalidArgument);
    REQUIRE(code_of(options(1, "nonsense")) == kvstream::ErrorCode::kInvalidArgument);
    auto bad = layout;
    bad.slot_mapping[3] = bad.slot_mapping[4];
    REQUIRE_THROWS_WITH(kvstream::Transfer::start(options(1, "q8"), bad), Catch::Contains("two tokens map to one slot"));
    bad = layout;
    bad.k.pop_back();
    REQUIRE_THROWS_WITH(kvstream::Transfer::start(options(1, "q8"), bad), Catch::Contains("one K and one V pointer per layer"));
  }
  SECTION("a layout of another model shape") {
    RunningSender s;
    auto shape = fx.profile.shape;
    shape.n_layers += 1;
    PagedCache other(shape, kvstream::Dtype::F16, 40, 16);
    try {
      kvstream::fetch(options(s.port(), "q8"), other.layout(scrambled_slots(fx.kv.num_tokens(), 40, 16)));
      FAIL("no error");
    } catch (const kvstream::Error& e) {
      REQUIRE(e.code() == kvstream::ErrorCode::kInvalidArgument);
      REQUIRE_THAT(e.what(), Catch::Contains("the layout is for"));
    }
  }
}

TEST_CASE("cancel stops a transfer with kCancelled and leaves the layout alone afterwards", "[api][transfer][failure]") {
  const auto& fx = Fixture::get();
  ks::SenderFaults f;
  f.stall_at_chunk = 2;  // the transfer would wait here for the stall timeout
  RunningSender s(f);
  PagedCache cache(fx.profile.shape, kvstream::Dtype::F16, 40, 16);
  auto opt = options(s.port(), "fixed:q8");
  opt.stall_timeout_s = 20;
  auto t = kvstream::Transfer::start(opt, cache.layout(scrambled_slots(fx.kv.num_tokens(), 40, 16)));
  REQUIRE(t->wait_tokens(128, 20));  // chunks 0 and 1 arrived
  REQUIRE_FALSE(t->wait_tokens(129, 0.2));
  t->cancel();
  try {
    t->wait();
    FAIL("no error");
  } catch (const kvstream::Error& e) {
    REQUIRE(e.code() == kvstream::ErrorCode::kCancelled);
  }
  const auto st = t->poll();
  REQUIRE(st.done);
  REQUIRE_FALSE(st.ok);
  REQUIRE(st.error == kvstream::ErrorCode::kCancelled);
  REQUIRE(st.prefix_tokens == 128);
}

TEST_CASE("a corrupt blob is a kCorrupt error, or with partial a failed range the engine prefills", "[api][transfer][failure]") {
  const auto& fx = Fixture::get();
  ks::SenderFaults f;
  f.corrupt_blob_chunk = 2;
  RunningSender s(f);
  PagedCache cache(fx.profile.shape, kvstream::Dtype::F16, 40, 16);
  const auto slots = scrambled_slots(fx.kv.num_tokens(), 40, 16);
  SECTION("without partial") {
    try {
      kvstream::fetch(options(s.port(), "fixed:q8"), cache.layout(slots));
      FAIL("no error");
    } catch (const kvstream::Error& e) {
      REQUIRE(e.code() == kvstream::ErrorCode::kCorrupt);
      REQUIRE_THAT(e.what(), Catch::Contains("chunk 2"));
    }
  }
  SECTION("with partial") {
    auto opt = options(s.port(), "fixed:q8");
    opt.partial = true;
    std::vector<kvstream::ChunkEvent> failed;
    opt.on_chunk = [&](const kvstream::ChunkEvent& e) {
      if (!e.ok) failed.push_back(e);
    };
    auto t = kvstream::Transfer::start(opt, cache.layout(slots));
    const auto r = t->wait();
    REQUIRE_FALSE(r.complete);
    REQUIRE(r.failed == std::vector<kvstream::TokenRange>{{128, 192}});
    REQUIRE(r.error == kvstream::ErrorCode::kCorrupt);
    REQUIRE(failed.size() == 1);
    REQUIRE(failed[0].index == 2);
    REQUIRE_THAT(failed[0].error, Catch::Contains("CRC"));
    const auto st = t->poll();
    REQUIRE(st.prefix_tokens == 128);
    REQUIRE(st.chunks_failed == 1);
    REQUIRE(st.tokens_ready == st.tokens_total - 64);
    // the failed chunk's slots were not written
    for (size_t tok = 128; tok < 192; ++tok) REQUIRE(*cache.row(cache.k, 0, slots[tok]) == 0xAB);
  }
  SECTION("with partial, the whole context when the sender does not serve it") {
    auto opt = options(s.port(), "fixed:q8");
    opt.partial = true;
    opt.context = "gone";
    opt.max_tokens = 300;
    const auto r = kvstream::fetch(opt, cache.layout(slots));
    REQUIRE(r.failed == std::vector<kvstream::TokenRange>{{0, 300}});
    REQUIRE(r.error == kvstream::ErrorCode::kUnknownContext);
  }
}
