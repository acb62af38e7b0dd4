// Workload generation, the replay engine (synthetic model, raw codec, real store files) and the
// codec container adapter.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "codec/profile.h"
#include "store/context_codec.h"
#include "bench/replay.h"
#include "bench/workload.h"
#include "tests/store/store_test_util.h"

using namespace kvstream;
using namespace kvstream::store;

namespace {

// Small stories: blank-line separated, several sentences each.
std::string synthetic_text(int stories) {
  std::string t;
  for (int s = 0; s < stories; ++s) {
    for (int k = 0; k < 8; ++k)
      t += "Story " + std::to_string(s) + " has sentence number " + std::to_string(k) + " about a cat. ";
    t += "\n\n";
  }
  return t;
}

// A deterministic stand-in for the model: one token per word, KV values a function of
// (token, position) so that truncation and reuse are visible in the values.
class FakeEngine final : public KvEngine {
 public:
  explicit FakeEngine(int window) : window_(window) {}
  std::string model_name() const override { return "fake"; }
  int window() const override { return window_; }
  KvCache new_cache() const override { return KvCache({2, 1, 4}, "fake", 10000.0f, true); }
  void extend(KvCache& kv, std::span<const int32_t> tokens) const override {
    const size_t n0 = kv.num_tokens();
    kv.resize(n0 + tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
      kv.tokens[n0 + i] = tokens[i];
      for (int l = 0; l < 2; ++l)
        for (int d = 0; d < 4; ++d) {
          kv.k_row(l, n0 + i)[d] = float(tokens[i] % 97) * 0.01f + float(l + d);
          kv.v_row(l, n0 + i)[d] = float(tokens[i] % 89) * 0.02f - float(d);
        }
    }
  }
  std::vector<int32_t> tokenize(const std::string& text, bool bos) const override {
    std::vector<int32_t> out;
    if (bos) out.push_back(1);
    uint32_t h = 2166136261u;
    for (char c : text) {
      if (c == ' ') {
        out.push_back(static_cast<int32_t>(3 + h % 500));
        h = 2166136261u;
      } else {
        h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
      }
    }
    out.push_back(static_cast<int32_t>(3 + h % 500));
    return out;
  }

 private:
  int window_;
};

Workload small_workload(int sessions, uint64_t seed) {
  WorkloadOptions o;
  o.sessions = sessions;
  o.seed = seed;
  o.sessions_per_s = 1.0;
  o.think_s_mean = 20;
  o.text_begin_frac = 0;
  return generate_workload(o, synthetic_text(50));
}

ReplayOptions options(PolicyKind p, uint64_t mem, uint64_t disk) {
  ReplayOptions o;
  o.policy = p;
  o.mem_bytes = mem;
  o.disk_bytes = disk;
  o.fsync = false;
  o.chunk_tokens = 16;
  o.per_turn = true;
  return o;
}

}  // namespace

TEST_CASE("workload generator: deterministic, Poisson arrivals, ~5.75 turns, round trip", "[store][workload]") {
  const auto text = synthetic_text(50);
  WorkloadOptions o;
  o.sessions = 400;
  o.seed = 9;
  o.text_begin_frac = 0;
  const auto a = generate_workload(o, text);
  const auto b = generate_workload(o, text);
  REQUIRE(a.sessions.size() == 400);
  CHECK(a.num_turns() == b.num_turns());
  CHECK(a.sessions[17].turns[0].prompt == b.sessions[17].turns[0].prompt);
  const double mean_turns = double(a.num_turns()) / a.sessions.size();
  CHECK(mean_turns > 5.0);
  CHECK(mean_turns < 6.5);
  double last = 0, sum_gap = 0;
  for (const auto& s : a.sessions) {
    CHECK(s.arrival_s > last);
    sum_gap += s.arrival_s - last;
    last = s.arrival_s;
    for (size_t k = 1; k < s.turns.size(); ++k) CHECK(s.turns[k].time_s >= s.turns[k - 1].time_s);
    CHECK_FALSE(s.turns[0].prompt.empty());
    CHECK_FALSE(s.turns[0].response.empty());
  }
  CHECK(sum_gap / 400 == Approx(1.0 / o.sessions_per_s).epsilon(0.15));  // mean inter-arrival

  testing::TempDir dir;
  const std::string path = dir.path + "/w.json";
  save_workload(a, path);
  const auto back = load_workload(path);
  CHECK(back.num_turns() == a.num_turns());
  CHECK(back.sessions[3].turns.back().response == a.sessions[3].turns.back().response);
  { std::ofstream(dir.path + "/bad.json") << R"({"format": "kvstream-workload/1", "seed": 1, "sessions": [{"id": 0}]})"; }
  CHECK_THROWS_AS(load_workload(dir.path + "/bad.json"), std::runtime_error);
  CHECK_THROWS_AS(load_workload(dir.path + "/missing.json"), std::runtime_error);
  o.sessions = 0;
  CHECK_THROWS_AS(generate_workload(o, text), std::invalid_argument);
}

TEST_CASE("workload generator: lognormal think times keep the mean, heavier tail", "[store][workload]") {
  const auto text = synthetic_text(50);
  WorkloadOptions o;
  o.sessions = 400;
  o.seed = 9;
  o.text_begin_frac = 0;
  auto gaps = [](const Workload& w) {
    std::vector<double> g;
    for (const auto& s : w.sessions)
      for (size_t k = 1; k < s.turns.size(); ++k) g.push_back(s.turns[k].time_s - s.turns[k - 1].time_s);
    std::sort(g.begin(), g.end());
    return g;
  };
  const auto expo = gaps(generate_workload(o, text));
  o.think_dist = "lognormal";
  o.think_sigma = 1.5;
  const auto logn = gaps(generate_workload(o, text));
  REQUIRE(logn.size() > 1000);
  double sum = 0;
  for (double g : logn) sum += g;
  CHECK(sum / logn.size() == Approx(60.0).epsilon(0.25));  // same mean (sd of the mean ~ 4 s)
  // Median exp(mu) = 60 e^{-sigma^2/2} = 19.5 s, vs 60 ln 2 = 41.6 s for the exponential.
  CHECK(logn[logn.size() / 2] > 12);
  CHECK(logn[logn.size() / 2] < 30);
  CHECK(expo[expo.size() / 2] > 30);
  o.think_dist = "pareto";
  CHECK_THROWS_AS(generate_workload(o, text), std::invalid_argument);
  o.think_dist = "lognormal";
  o.think_sigma = 0;
  CHECK_THROWS_AS(generate_workload(o, text), std::invalid_argument);
}

TEST_CASE("workload generator: lognormal turn counts keep the mean, more short and very long sessions", "[store][workload]") {
  const auto text = synthetic_text(50);
  WorkloadOptions o;
  o.sessions = 2000;
  o.seed = 5;
  o.text_begin_frac = 0;
  o.think_s_mean = 0;  // only the counts matter here
  o.max_turns = 1000;
  auto counts = [&] {
    std::vector<size_t> c;
    for (const auto& s : generate_workload(o, text).sessions) c.push_back(s.turns.size());
    std::sort(c.begin(), c.end());
    return c;
  };
  const auto geo = counts();
  o.turns_dist = "lognormal";
  o.turns_sigma = 1.5;
  const auto logn = counts();
  auto mean = [](const std::vector<size_t>& c) {
    double s = 0;
    for (size_t x : c) s += double(x);
    return s / double(c.size());
  };
  CHECK(mean(geo) == Approx(5.75).epsilon(0.1));
  CHECK(mean(logn) == Approx(5.75).epsilon(0.2));  // heavy tail: the sample mean is noisier
  CHECK(logn[logn.size() / 2] < geo[geo.size() / 2]);  // more short sessions
  CHECK(logn.back() > 2 * geo.back());                 // and a few very long ones
  o.turns_dist = "zipf";
  CHECK_THROWS_AS(generate_workload(o, text), std::invalid_argument);
  o.turns_dist = "lognormal";
  o.turns_sigma = 0;
  CHECK_THROWS_AS(generate_workload(o, text), std::invalid_argument);
}

TEST_CASE("replay: unlimited store hits every later turn, an empty store none", "[store][replay]") {
  const auto w = small_workload(12, 3);
  FakeEngine engine(512);
  const auto codec = make_raw_codec({2, 1, 4}, "fake", 10000.0f);
  const auto big = replay(w, engine, *codec, options(PolicyKind::Lru, 64 << 20, 64 << 20));
  CHECK(big.turns == w.num_turns());
  CHECK(big.eligible_turns == w.num_turns() - w.sessions.size());
  CHECK(big.hits_mem == big.eligible_turns);
  CHECK(big.hit_rate() == 1.0);
  CHECK(big.prefill_tokens_saved > 0);
  CHECK(big.mean_ttft_ms < big.recompute_mean_ttft_ms);
  CHECK(big.bytes_read_disk == 0);
  for (const auto& t : big.per_turn)
    if (t.turn > 0) CHECK(t.reused == t.history - t.dropped);  // all kept history comes from the store

  // Both TTFT models: identical on misses, layer-wise never slower on hits; mean_ttft_ms follows
  // the chosen one (layer-wise by default). The fake model has 2 layers.
  CHECK(big.pipeline_layers == 2);
  CHECK(big.overlap == "layerwise");
  CHECK(big.mean_ttft_ms == Approx(big.mean_ttft_layerwise_ms));
  CHECK(big.mean_ttft_layerwise_ms < big.mean_ttft_serial_ms);
  for (const auto& t : big.per_turn) {
    if (t.tier == "miss") CHECK(t.ttft_serial_ms == Approx(t.ttft_layerwise_ms));
    else CHECK(t.ttft_layerwise_ms < t.ttft_serial_ms);
    CHECK(t.ttft_ms == Approx(t.ttft_layerwise_ms));
  }
  auto serial_opt = options(PolicyKind::Lru, 64 << 20, 64 << 20);
  serial_opt.overlap = LoadOverlap::None;
  serial_opt.pipeline_layers = 8;
  const auto serial = replay(w, engine, *codec, serial_opt);
  CHECK(serial.pipeline_layers == 8);
  CHECK(serial.hits_mem == big.hits_mem);
  CHECK(serial.mean_ttft_ms == Approx(serial.mean_ttft_serial_ms));
  CHECK(serial.mean_ttft_layerwise_ms < serial.mean_ttft_serial_ms);
  serial_opt.pipeline_layers = -1;
  CHECK_THROWS_AS(replay(w, engine, *codec, serial_opt), std::invalid_argument);

  const auto none = replay(w, engine, *codec, options(PolicyKind::Lru, 0, 0));
  CHECK(none.hits_mem + none.hits_disk == 0);
  CHECK(none.mean_ttft_ms == Approx(none.recompute_mean_ttft_ms));
  CHECK(none.recompute_mean_ttft_ms == Approx(big.recompute_mean_ttft_ms));
}

TEST_CASE("replay: truncation past the window, disk tier hits, scheduler at least as good as LRU", "[store][replay]") {
  const auto w = small_workload(30, 5);
  FakeEngine engine(96);  // small window: long sessions overflow and are truncated
  const auto codec = make_raw_codec({2, 1, 4}, "fake", 10000.0f);
  // Entries are a few KB: memory for ~2 sessions, disk for ~5.
  const auto lru = replay(w, engine, *codec, options(PolicyKind::Lru, 8000, 20000));
  const auto fifo = replay(w, engine, *codec, options(PolicyKind::Fifo, 8000, 20000));
  const auto sched = replay(w, engine, *codec, options(PolicyKind::Scheduler, 8000, 20000));
  CHECK(lru.truncations > 0);
  CHECK(lru.truncations == sched.truncations);
  for (const auto& t : lru.per_turn) {
    CHECK(t.history - t.dropped + t.prompt <= 96);
    CHECK(t.reused <= t.history - t.dropped);
  }
  CHECK(lru.hits_disk > 0);
  CHECK(lru.hit_rate() < 1.0);
  CHECK(sched.hit_rate() >= lru.hit_rate());
  CHECK(sched.hit_rate() >= fifo.hit_rate());
  CHECK(sched.prefetched > 0);
  CHECK(sched.mean_ttft_ms <= lru.mean_ttft_ms);
  INFO("lru " << lru.hit_rate() << " fifo " << fifo.hit_rate() << " scheduler " << sched.hit_rate());
}

TEST_CASE("raw context codec round trip and bad payloads", "[store][codec]") {
  FakeEngine engine(512);
  auto kv = engine.new_cache();
  engine.extend(kv, engine.tokenize("one two three four five six seven", true));
  const auto codec = make_raw_codec({2, 1, 4}, "fake", 10000.0f);
  const auto payload = codec->encode(kv);
  const auto part = codec->decode(payload, 0, 2, 6);
  REQUIRE(part.num_tokens() == 4);
  CHECK(part.keys_pre_rope);
  CHECK(std::vector<int32_t>(part.tokens) == std::vector<int32_t>(kv.tokens.begin() + 2, kv.tokens.begin() + 6));
  CHECK(part.k_row(1, 0)[2] == kv.k_row(1, 2)[2]);
  CHECK(codec->level_bytes(payload, 0, 2, 6) < payload.size());
  CHECK_THROWS(codec->decode(payload, 0, 5, 99));
  auto cut = payload;
  cut.resize(cut.size() - 3);
  CHECK_THROWS(codec->decode(cut, 0, 0, 1));
}

TEST_CASE("codec container adapter: every level plus text, ranges decode to the right tokens", "[store][codec]") {
  // A one-level profile built directly from calibration KV (no model needed).
  FakeEngine engine(512);
  KvCache calib = engine.new_cache();
  engine.extend(calib, engine.tokenize(synthetic_text(3), true));
  codec::Profile p;
  p.shape = {2, 1, 4};
  p.model_name = "fake";
  const auto stats = codec::lane_stats({calib});
  p.mean = stats.mean;
  p.weight.assign(p.mean.size(), 1.0f);
  codec::LevelRecipe recipe;
  recipe.name = "fine";
  recipe.k_step = recipe.v_step = 0.005f;
  p.levels.push_back(codec::build_level(p.shape, {calib}, p.mean, p.weight, recipe));
  const auto c = make_container_codec(p, 16, 1);
  REQUIRE(c->num_levels() == 2);
  CHECK(c->level_name(1) == "text");

  KvCache kv = engine.new_cache();
  engine.extend(kv, engine.tokenize(synthetic_text(1), true));
  REQUIRE(kv.num_tokens() > 40);
  const auto payload = c->encode(kv);
  const auto part = c->decode(payload, 0, 5, 37);  // spans three chunks
  REQUIRE(part.num_tokens() == 32);
  CHECK(part.keys_pre_rope);
  CHECK(std::vector<int32_t>(part.tokens) == std::vector<int32_t>(kv.tokens.begin() + 5, kv.tokens.begin() + 37));
  double max_err = 0;
  for (int l = 0; l < 2; ++l)
    for (size_t t = 0; t < 32; ++t)
      for (int d = 0; d < 4; ++d) max_err = std::max<double>(max_err, std::fabs(part.k_row(l, t)[d] - kv.k_row(l, t + 5)[d]));
  CHECK(max_err < 0.01);
  CHECK(c->level_bytes(payload, 0, 5, 37) < payload.size());
  CHECK_THROWS(c->decode(payload, 1, 0, 4));  // text carries no KV
  auto bad = payload;
  bad[10] ^= 1;  // header
  CHECK_THROWS(c->decode(bad, 0, 0, 16));
  auto cut = payload;
  cut.resize(cut.size() - 5);
  CHECK_THROWS(c->decode(cut, 0, 0, 16));
}
