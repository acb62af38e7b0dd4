// The receiver's decode pipeline on real blobs, without sockets: the context's token ids land in
// every row, a blob whose carried token ids disagree with the manifest's is reported as corrupt
// (and leaves the cache untouched), and text chunks submitted out of order (a fallback re-fetch
// arriving after later text chunks) are recomputed lowest index first instead of deadlocking.
#include <catch2/catch.hpp>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>

#include "codec/container.h"
#include "streamer/decode_pipeline.h"
#include "tests/streamer/fixture.h"

using namespace kvstream;
using namespace kvstream::streamer;
using kvstream::testing::StreamFixture;

namespace {

struct Events {
  std::mutex mu;
  std::condition_variable cv;
  std::set<size_t> done;
  std::vector<std::pair<size_t, std::string>> corrupt;
  std::vector<std::string> errors;
  // Waits (at most 30 s, never forever) until pred() holds.
  template <class P>
  bool wait(P pred) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(30), pred);
  }
};

struct Setup {
  codec::ContainerReader reader;
  std::vector<DecodePipeline::Chunk> chunks;
  std::vector<int32_t> ids;
};

Setup setup() {
  const auto& fx = StreamFixture::get();
  Setup s{codec::ContainerReader::open(fx.kvs_path), {}, {}};
  const auto& info = s.reader.info();
  for (uint32_t c = 0; c < info.num_chunks; ++c) {
    s.chunks.push_back({uint32_t(info.chunk_begin(c)), uint32_t(info.chunk_end(c) - info.chunk_begin(c))});
    const auto t = s.reader.tokens(c);
    s.ids.insert(s.ids.end(), t.begin(), t.end());
  }
  return s;
}

std::unique_ptr<DecodePipeline> make_pipeline(const Setup& s, Events& ev, std::vector<int32_t> ids) {
  const auto& fx = StreamFixture::get();
  return std::make_unique<DecodePipeline>(
      fx.model.new_cache(false), s.chunks, &fx.profile, &fx.model, 0.0,
      [&ev](size_t c, double) {
        std::lock_guard<std::mutex> lock(ev.mu);
        ev.done.insert(c);
        ev.cv.notify_all();
      },
      [&ev](const std::string& m) {
        std::lock_guard<std::mutex> lock(ev.mu);
        ev.errors.push_back(m);
        ev.cv.notify_all();
      },
      std::move(ids),
      [&ev](size_t c, const std::string& why) {
        std::lock_guard<std::mutex> lock(ev.mu);
        ev.corrupt.emplace_back(c, why);
        ev.cv.notify_all();
      });
}

std::vector<uint8_t> blob_of(const Setup& s, uint32_t chunk, int level) {
  const auto b = s.reader.blob(chunk, level);
  return {b.begin(), b.end()};
}

}  // namespace

TEST_CASE("the pipeline writes the context's token ids for KV chunks", "[pipeline]") {
  const auto& fx = StreamFixture::get();
  auto s = setup();
  REQUIRE(s.ids == fx.kv.tokens);
  Events ev;
  auto p = make_pipeline(s, ev, s.ids);
  const int q8 = s.reader.info().level_index("q8");
  for (size_t c = 0; c < s.chunks.size(); ++c) p->submit(c, false, blob_of(s, uint32_t(c), q8));
  REQUIRE(ev.wait([&] { return ev.done.size() == s.chunks.size() || !ev.errors.empty(); }));
  REQUIRE(ev.errors.empty());
  REQUIRE(ev.corrupt.empty());
  const KvCache kv = p->take();
  REQUIRE(kv.tokens == fx.kv.tokens);  // q8 blobs carry no ids: they come from the manifest
}

TEST_CASE("a blob whose carried token ids differ from the manifest's is reported corrupt", "[pipeline]") {
  auto s = setup();
  // level 0 of the ladder is a quant level; with the profile's token table its blobs carry ids
  const auto b1 = blob_of(s, 1, 0);
  const auto h = codec::parse_blob_header(b1);
  if (!(h.flags & codec::kBlobFlagTokenLayer)) {
    WARN("the fixture's level-0 blob of chunk 1 carries no token ids; nothing to check");
    return;
  }
  auto ids = s.ids;
  ids[s.chunks[1].token_begin + 5] ^= 1;  // the manifest says another id
  Events ev;
  auto p = make_pipeline(s, ev, ids);
  p->submit(0, false, blob_of(s, 0, 0));
  p->submit(1, false, b1);
  p->submit(2, false, blob_of(s, 2, 0));
  REQUIRE(ev.wait([&] { return (ev.done.size() == 2 && ev.corrupt.size() == 1) || !ev.errors.empty(); }));
  REQUIRE(ev.errors.empty());
  REQUIRE(ev.corrupt[0].first == 1);
  REQUIRE_THAT(ev.corrupt[0].second, Catch::Contains("token ids differ"));
  REQUIRE(ev.done == std::set<size_t>{0, 2});
}

TEST_CASE("text chunks submitted out of order are recomputed lowest index first", "[pipeline]") {
  const auto& fx = StreamFixture::get();
  auto s = setup();
  Events ev;
  auto p = make_pipeline(s, ev, s.ids);
  const int text = s.reader.info().level_index("text");
  // chunk 0 as KV, chunk 2 as text first, then chunk 1 as text (as a fallback re-fetch would arrive)
  p->submit(2, true, blob_of(s, 2, text));
  p->submit(0, false, blob_of(s, 0, s.reader.info().level_index("fp16")));
  p->submit(1, true, blob_of(s, 1, text));
  REQUIRE(ev.wait([&] { return ev.done.size() == 3 || !ev.errors.empty(); }));
  REQUIRE(ev.errors.empty());
  for (size_t c = 3; c < s.chunks.size(); ++c) p->submit(c, true, blob_of(s, uint32_t(c), text));
  REQUIRE(ev.wait([&] { return ev.done.size() == s.chunks.size() || !ev.errors.empty(); }));
  REQUIRE(ev.errors.empty());
  const KvCache kv = p->take();
  REQUIRE(kv.tokens == fx.kv.tokens);
  // chunks 1.. are the model's recompute on the received chunk 0
  KvCache want = kv.slice(0, 64);
  fx.model.recompute(want, std::vector<int32_t>(fx.kv.tokens.begin() + 64, fx.kv.tokens.end()));
  const size_t kd = size_t(kv.shape.kv_dim());
  size_t differ = 0;
  for (int l = 0; l < kv.shape.n_layers; ++l)
    for (size_t i = 64 * kd; i < kv.num_tokens() * kd; ++i)
      differ += (kv.k[l][i] != want.k[l][i]) + (kv.v[l][i] != want.v[l][i]);
  REQUIRE(differ == 0);
}

TEST_CASE("a text blob whose ids differ from the manifest's fails the pipeline", "[pipeline]") {
  auto s = setup();
  auto ids = s.ids;
  ids[3] ^= 1;
  Events ev;
  auto p = make_pipeline(s, ev, ids);
  p->submit(0, true, blob_of(s, 0, s.reader.info().level_index("text")));
  REQUIRE(ev.wait([&] { return !ev.errors.empty(); }));
  REQUIRE_THAT(ev.errors[0], Catch::Contains("chunk 0 (text)") && Catch::Contains("differ from the manifest"));
  REQUIRE(ev.done.empty());
}

TEST_CASE("a rescue recomputes a chunk whose KV is late from the manifest's ids, and drops the KV", "[pipeline]") {
  const auto& fx = StreamFixture::get();
  auto s = setup();
  REQUIRE(s.chunks.size() >= 3);
  Events ev;
  auto p = make_pipeline(s, ev, s.ids);
  const int fp16 = s.reader.info().level_index("fp16");
  const auto now = std::chrono::steady_clock::now();
  // chunk 1's window is open now; chunk 2's closed before chunk 1 could be ready: no rescue there
  p->rescue(1, now, now + std::chrono::hours(1));
  p->rescue(2, now - std::chrono::hours(2), now - std::chrono::hours(1));
  p->submit(0, false, blob_of(s, 0, fp16));
  REQUIRE(ev.wait([&] { return ev.done.count(1) || !ev.errors.empty(); }));  // chunk 1's KV never came
  REQUIRE(ev.errors.empty());
  CHECK(p->rescued(1));
  CHECK(p->served_by_text(1));
  p->submit(1, false, blob_of(s, 1, fp16));  // the late KV: dropped, the chunk is not reported again
  for (size_t c = 2; c < s.chunks.size(); ++c) p->submit(c, false, blob_of(s, uint32_t(c), fp16));
  REQUIRE(ev.wait([&] { return ev.done.size() == s.chunks.size() || !ev.errors.empty(); }));
  REQUIRE(ev.errors.empty());
  CHECK_FALSE(p->rescued(2));
  const KvCache kv = p->take();
  KvCache want = kv.slice(0, s.chunks[1].token_begin);
  const auto b = fx.kv.tokens.begin();
  fx.model.recompute(want, std::vector<int32_t>(b + s.chunks[1].token_begin, b + s.chunks[2].token_begin));
  const size_t kd = size_t(kv.shape.kv_dim());
  size_t differ = 0;
  for (int l = 0; l < kv.shape.n_layers; ++l)
    for (size_t i = s.chunks[1].token_begin * kd; i < s.chunks[2].token_begin * kd; ++i)
      differ += (kv.k[l][i] != want.k[l][i]) + (kv.v[l][i] != want.v[l][i]);
  CHECK(differ == 0);  // chunk 1 is the recompute on chunk 0, not its fp16 decode
}
