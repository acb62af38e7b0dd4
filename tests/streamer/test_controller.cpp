// Controller and plan search on pure inputs: reaction to a bandwidth drop, best effort when the
// SLO cannot be met, exactness of the plan search against brute force, the CacheGen rule.
#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <random>

#include "streamer/controller.h"
#include "streamer/plan.h"

using namespace kvstream::streamer;

namespace {

// 10 chunks x 64 tokens; levels hi/mid/lo; text 150 B.
StreamSpec ladder_spec(size_t chunks = 10) {
  StreamSpec s;
  s.levels = {{0, "hi", 0.99, 0.5}, {1, "mid", 0.95, 2.0}, {2, "lo", 0.85, 8.0}};
  for (size_t i = 0; i < chunks; ++i) s.chunks.push_back({64, 150, {20000, 10000, 4000}});
  return s;
}

// Drives a controller without pipelining: chunk i is requested when chunk i-1 has fully arrived,
// served at rate_of(i) bytes/s after one RTT; returns the decisions.
std::vector<Decision> drive(Controller& c, const std::function<double(size_t)>& rate_of, double rtt) {
  double t = rtt;  // manifest arrived
  double prev_last = 0, prefix_ready = 0, compute_free = 0, decode_free = 0;
  const double decode_s = 0.001;
  while (c.next_chunk() < c.num_chunks()) {
    const Decision d = c.choose(t);
    const double start = std::max(prev_last, t + rtt);
    const double rate = rate_of(d.chunk);
    const double first = start + std::min<double>(1500, double(d.bytes)) / rate;
    const double last = start + double(d.bytes) / rate;
    c.on_first_byte(d.chunk, first, std::min<uint64_t>(1500, d.bytes));
    c.on_last_byte(d.chunk, last);
    double ready;
    if (d.option == kText) {
      const double busy = c.spec().chunks[d.chunk].tokens / c.config().cost.prefill_rate;
      ready = std::max({last, prefix_ready, compute_free}) + busy;
      compute_free = ready;
      c.on_ready(d.chunk, ready, busy);  // (events reach the controller early here: fine for a test)
    } else {
      ready = std::max(last, decode_free) + decode_s;
      decode_free = ready;
      c.on_ready(d.chunk, ready, decode_s);
    }
    prefix_ready = std::max(prefix_ready, ready);
    prev_last = last;
    t = last;
  }
  return c.decisions();
}

ControllerConfig config(double slo_s, double prefill_rate) {
  ControllerConfig cfg;
  cfg.slo_s = slo_s;
  cfg.prior_mbps = 32;
  cfg.rtt_s = 0.01;
  cfg.cost.prefill_rate = prefill_rate;
  return cfg;
}

}  // namespace

TEST_CASE("adaptive picks the best level when the link is fast", "[controller]") {
  // (recompute at 50 tok/s: a text chunk takes 1.28 s, more than the SLO)
  Controller c(ladder_spec(), parse_policy("adaptive"), config(1.0, 50));
  auto d = drive(c, [](size_t) { return 4e6; }, 0.01);
  REQUIRE(d[0].option == 2);  // blind probe: the smallest level until the link is measured
  for (size_t i = 1; i < d.size(); ++i) REQUIRE(d[i].option == 0);
  REQUIRE(d.back().feasible);
}

TEST_CASE("before any measurement adaptive probes with the smallest level, at most two chunks ahead", "[controller]") {
  Controller c(ladder_spec(), parse_policy("adaptive"), config(1.0, 50));
  auto d0 = c.choose(0.01);
  REQUIRE(d0.option == 2);
  REQUIRE(c.request_due(10));  // a second blind chunk may follow
  c.choose(0.011);
  REQUIRE_FALSE(c.request_due(10));  // no third one until a chunk has measured the link
  REQUIRE(c.request_due(0));         // (or everything requested has arrived)
  c.on_first_byte(0, 0.02);
  c.on_last_byte(0, 0.021);
  REQUIRE(c.samples_mbps().size() == 1);
}

TEST_CASE("a bandwidth drop lowers the level within one chunk", "[controller]") {
  // 4 MB/s for chunks 0..3, then 100 kB/s: the remaining chunks at "hi" no longer fit the SLO.
  Controller c(ladder_spec(), parse_policy("adaptive"), config(0.6, 50));
  auto rate = [](size_t i) { return i < 4 ? 4e6 : 1e5; };
  auto d = drive(c, rate, 0.01);
  for (size_t i = 1; i <= 4; ++i) REQUIRE(d[i].option == 0);  // chosen before the drop was seen
  // Chunk 4 was the first slow one; the decision right after it (chunk 5) must already be lower.
  INFO("est " << d[5].est_mbps << " predicted " << d[5].predicted_ttft_s);
  REQUIRE(d[5].option != 0);
  REQUIRE(option_agreement(c.spec(), d[5].option) < option_agreement(c.spec(), 0));
  REQUIRE(d[5].est_mbps < 4.0);  // was 32 (prior) before the drop
}

TEST_CASE("the throughput estimate is the discounted harmonic mean of recent chunks", "[controller]") {
  ControllerConfig cfg = config(1.0, 200);
  cfg.window = 3;
  cfg.safety = 0.9;
  Controller c(ladder_spec(), parse_policy("fixed:hi"), cfg);
  REQUIRE(c.estimate_bytes_per_s() == Approx(32e6 / 8));  // prior before any sample
  std::vector<double> rates = {1e6, 2e6, 4e6, 4e6};
  drive(c, [&](size_t i) { return i < rates.size() ? rates[i] : 4e6; }, 0.01);
  // last three samples are all 4e6 -> 0.9 * 4e6
  REQUIRE(c.estimate_bytes_per_s() == Approx(0.9 * 4e6).epsilon(0.01));
}

TEST_CASE("an infeasible SLO gives the fastest plan (best effort)", "[controller]") {
  SECTION("text is fastest when recompute is cheap and the link slow") {
    Controller c(ladder_spec(), parse_policy("adaptive"), config(0.001, 1e6));
    auto d = drive(c, [](size_t) { return 2e4; }, 0.01);
    REQUIRE_FALSE(d.front().feasible);
    // text, or the one probe chunk that measures the link (chunk 0 or, after a text chunk 0, chunk 1)
    for (size_t i = 0; i < d.size(); ++i) REQUIRE((d[i].option == kText || (i <= 1 && d[i].option == 2)));
    REQUIRE((d[0].option == 2 || d[1].option == 2));
  }
  SECTION("the smallest level is fastest when recompute is slow") {
    Controller c(ladder_spec(), parse_policy("adaptive"), config(0.001, 10));
    auto d = drive(c, [](size_t) { return 1e6; }, 0.01);
    REQUIRE_FALSE(d.front().feasible);
    for (const auto& x : d) REQUIRE(x.option == 2);
  }
}

TEST_CASE("text (exact, agreement 1) is used where its recompute fits the SLO", "[controller]") {
  // 200 tok/s: a text chunk costs 0.32 s of compute; with 1 s of SLO some chunks go as text,
  // their recompute overlapping the transfer of later chunks, the rest at the best level.
  Controller c(ladder_spec(), parse_policy("adaptive"), config(1.0, 200));
  auto d = drive(c, [](size_t) { return 4e6; }, 0.01);
  // The probe is the first KV chunk (chunk 0, or chunk 1 when the plan opens with text).
  const size_t probe = d[0].option == kText ? 1 : 0;
  REQUIRE(d[probe].option == 2);
  int text = 0;
  for (size_t i = 0; i < d.size(); ++i) {
    if (i == probe) continue;
    REQUIRE((d[i].option == kText || d[i].option == 0));
    text += d[i].option == kText;
  }
  REQUIRE(text >= 1);
  REQUIRE(text <= 3);
}

TEST_CASE("text recompute overlaps later transfers in the pipeline model", "[controller]") {
  StreamSpec s = ladder_spec(4);
  CostModel cost;
  cost.prefill_rate = 640;  // 0.1 s per text chunk
  TransferModel tm = constant_rate_model(1e5, 0.0);  // hi chunk: 0.2 s
  // text first: its recompute (0.1 s) runs while chunks 1..3 are on the wire
  auto tl = evaluate_plan(s, cost, tm, {kText, 0, 0, 0}, 0.0);
  REQUIRE(tl.ready[0] == Approx(0.1 + 176.0 / 1e5).epsilon(1e-3));
  REQUIRE(tl.ttft == Approx(tl.end[3]).margin(0.002));  // + one chunk's decode
  // text last: it must wait for its own arrival and for every earlier chunk to be ready
  auto tl2 = evaluate_plan(s, cost, tm, {0, 0, 0, kText}, 0.0);
  REQUIRE(tl2.ttft == Approx(tl2.end[3] + 0.1).epsilon(1e-3));
}

TEST_CASE("the plan search is exact against brute force", "[controller]") {
  std::mt19937 rng(42);
  for (int trial = 0; trial < 40; ++trial) {
    StreamSpec s;
    s.levels = {{0, "a", 0.99, 0}, {1, "b", 0.96, 0}, {2, "c", 0.9, 0}, {3, "d", 0.7, 0}};
    const size_t n = 2 + rng() % 4;
    for (size_t i = 0; i < n; ++i) {
      const uint64_t base = 2000 + rng() % 20000;
      s.chunks.push_back({uint32_t(16 + rng() % 64), 100, {base * 4, base * 2, base, base / 2}});
    }
    CostModel cost;
    cost.prefill_rate = 100 + rng() % 2000;
    cost.default_decode_s_per_token = 1e-4;
    const double bps = 1e4 + rng() % 400000;
    TransferModel tm = constant_rate_model(bps, 0.02);
    const double deadline = 0.05 + (rng() % 1000) / 1000.0;
    std::vector<int> allowed = {0, 1, 2, 3, kText};
    PlanSearch ps;
    ps.spec = &s;
    ps.cost = &cost;
    ps.transfer = &tm;
    ps.allowed = allowed;
    const PlanResult r = ps.run(PipelineState{}, 0, 0.02, deadline);
    // brute force
    double best_q = -1, best_t = 1e18;
    std::vector<int> plan(n);
    std::function<void(size_t)> rec = [&](size_t j) {
      if (j == n) {
        const auto tl = evaluate_plan(s, cost, tm, plan, 0.02);
        double q = 0;
        for (size_t k = 0; k < n; ++k) q += s.chunks[k].tokens * option_agreement(s, plan[k]);
        if (tl.ttft <= deadline && q > best_q) best_q = q;
        best_t = std::min(best_t, tl.ttft);
        return;
      }
      for (int o : allowed) {
        plan[j] = o;
        rec(j + 1);
      }
    };
    rec(0);
    if (best_q < 0) {
      REQUIRE_FALSE(r.feasible);
      REQUIRE(r.predicted_ttft == Approx(best_t));
    } else {
      REQUIRE(r.feasible);
      REQUIRE(r.quality == Approx(best_q));
      REQUIRE(r.predicted_ttft <= deadline + 1e-12);
    }
  }
}

TEST_CASE("cachegen picks the best level that fits SLO/num_chunks, else text", "[controller]") {
  // SLO 1 s, 10 chunks -> 0.1 s per chunk. At 150 kB/s: hi 0.133 s (no), mid 0.067 s (yes).
  Controller c(ladder_spec(), parse_policy("cachegen"), config(1.0, 200));
  auto d = drive(c, [](size_t) { return 1.5e5; }, 0.01);
  for (size_t i = 1; i < d.size(); ++i) REQUIRE(d[i].option == 1);
  Controller slow(ladder_spec(), parse_policy("cachegen"), config(1.0, 200));
  auto d2 = drive(slow, [](size_t) { return 1e4; }, 0.01);  // even lo takes 0.4 s
  for (size_t i = 1; i < d2.size(); ++i) REQUIRE(d2[i].option == kText);
}

TEST_CASE("policies parse and resolve against the ladder", "[controller]") {
  StreamSpec s = ladder_spec(3);
  REQUIRE(parse_policy("fixed:mid").level == "mid");
  REQUIRE_THROWS_WITH(parse_policy("bogus"), Catch::Contains("unknown policy"));
  Policy p = parse_policy("plan:hi,text,lo");
  resolve_policy(p, s);
  REQUIRE(p.plan == std::vector<int>{0, kText, 2});
  Policy bad = parse_policy("plan:hi,lo");
  REQUIRE_THROWS_WITH(resolve_policy(bad, s), Catch::Contains("chunks"));
  Policy q8 = parse_policy("q8");
  REQUIRE_THROWS_WITH(resolve_policy(q8, s), Catch::Contains("q8"));
  Policy fx = parse_policy("fixed:nope");
  REQUIRE_THROWS_WITH(resolve_policy(fx, s), Catch::Contains("no level"));
  REQUIRE(plan_to_string(s, {0, kText, 2}) == "hi,text,lo");
}

TEST_CASE("requests are pipelined by the bandwidth-delay product", "[controller]") {
  ControllerConfig cfg = config(1.0, 200);
  cfg.prior_mbps = 8;  // 1 MB/s, rtt 10 ms -> window 15 kB
  Controller c(ladder_spec(), parse_policy("fixed:hi"), cfg);
  REQUIRE(c.request_due(0));
  auto d = c.choose(0.01);
  REQUIRE(d.window_bytes == Approx(15000).margin(2));
  REQUIRE_FALSE(c.request_due(20026));  // the whole 20 kB chunk still to come
  REQUIRE(c.request_due(15000));        // one window left: ask for the next now
}

TEST_CASE("adaptive probes with the smallest level that measures the link, then leaves the prior", "[streamer][controller]") {
  // Every level of chunk 0 but "mid" and "hi" is below the sample threshold: probing with "lo"
  // (the smallest) would never produce a throughput sample and the controller would plan on its
  // prior forever. The probe must be "mid" (smallest >= threshold), and the estimate must move.
  StreamSpec s = ladder_spec(6);
  ControllerConfig cfg = config(2.0, 10);  // a text chunk costs 6.4 s > SLO: KV chunks only
  cfg.min_sample_bytes = 5000;  // lo = 4000 B < 5000 <= mid = 10000 B
  cfg.prior_mbps = 100;
  Controller c(s, parse_policy("adaptive"), cfg);
  const auto d = drive(c, [](size_t) { return 250000.0; }, 0.01);  // 2 Mbit/s
  REQUIRE(d.size() == 6);
  REQUIRE(d[0].option != kText);
  CHECK(s.levels[size_t(d[0].option)].name == "mid");
  CHECK(d.back().est_mbps < 5.0);  // measured (2 Mbit/s x safety), not the 100 Mbit/s prior
  CHECK(d.back().est_mbps > 1.0);
  // With every level below the threshold the largest one probes (the closest to a real sample).
  cfg.min_sample_bytes = 50000;
  Controller c2(s, parse_policy("adaptive"), cfg);
  const int o2 = c2.choose(0.01).option;
  REQUIRE(o2 != kText);
  CHECK(s.levels[size_t(o2)].name == "hi");
}

TEST_CASE("adaptive may open with text, then probes: text alone never measures the link", "[streamer][controller]") {
  // Cheap recompute and a generous SLO: the plan wants text everywhere (agreement 1). Chunk 0 may
  // be text (it costs the link nothing); chunk 1 must be the probe, so that the controller leaves
  // its prior; afterwards text again where it fits.
  StreamSpec s = ladder_spec(6);
  ControllerConfig cfg = config(10.0, 2000);
  cfg.prior_mbps = 100;
  Controller c(s, parse_policy("adaptive"), cfg);
  const auto d = drive(c, [](size_t) { return 250000.0; }, 0.01);  // 2 Mbit/s
  REQUIRE(d.size() == 6);
  CHECK(d[0].option == kText);
  REQUIRE(d[1].option != kText);
  CHECK(s.levels[size_t(d[1].option)].name == "lo");  // the smallest level that gives a sample
  CHECK(d.back().est_mbps < 5.0);                      // measured, not the 100 Mbit/s prior
}
