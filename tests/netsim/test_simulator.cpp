// Simulator: analytic expectations on constant links, FIFO queueing of sends, idle gaps, looping,
// the read-only oracles, and agreement with Trace on real traces.
#include <catch2/catch.hpp>
#include <cmath>

#include "netsim/simulator.h"
#include "tests/test_data.h"

using namespace kvstream::netsim;

static constexpr TimeNs ms_ns(double v) { return static_cast<TimeNs>(v * 1e6); }

TEST_CASE("simulator: a transfer on a constant link takes bytes*8/rate + delay", "[netsim][sim]") {
  Simulator sim(Trace::load("const:100mbit"), 0.05);
  const std::uint64_t n = 12'500'000;
  const double pkts = std::ceil(n / 1500.0);
  CHECK(sim.send(n, 0) == Approx(pkts * 120e-6 + 0.05).epsilon(1e-9));
  CHECK(sim.delay_s() == Approx(0.05));
  CHECK(sim.bytes_sent() == n);
}

TEST_CASE("simulator: sends queue FIFO, idle capacity is not banked", "[netsim][sim]") {
  Simulator sim(Trace::load("const:12mbit"));  // 1.5 MB per second
  CHECK(sim.send(1'500'000, 0.0) == Approx(1.0));
  CHECK(sim.peek(1'500'000, 0.5) == Approx(2.0));  // behind the first
  // oracle on an idle link: the opportunity at exactly 0.5 s counts, so 1000 packets end at 1.499 s
  CHECK(sim.transfer_time(1'500'000, 0.5) == Approx(0.999));
  CHECK(sim.send(1'500'000, 0.5) == Approx(2.0));
  CHECK(sim.send(1'500'000, 5.0) == Approx(5.999));  // the idle 2 s..5 s is lost (not banked)
  CHECK(sim.send(0, 7.0) == Approx(7.0));
  CHECK_THROWS_AS(sim.send(10, 6.0), std::invalid_argument);  // time backwards
  CHECK_THROWS_AS(sim.send(10, -1.0), std::invalid_argument);
  sim.reset();
  CHECK(sim.send(1'500'000, 0.0) == Approx(1.0));
}

TEST_CASE("simulator: waits through an outage until the trace loops", "[netsim][sim]") {
  Simulator sim(Trace::parse("0 1.2\n1 0\n"), 0.01);  // 1.2 Mbit/s for 1 s, then off for 1 s
  const std::uint64_t per_on = 150'000;
  CHECK(sim.send(per_on, 0) == Approx(1.01));
  CHECK(sim.send(1500, 1.2) == Approx(2.02));  // first opportunity of the next loop (10 ms in) + delay
  const double t = sim.transfer_time(2 * per_on, 0);
  CHECK(t == Approx(3.01));
}

TEST_CASE("simulator: a long transfer averages the trace's mean capacity", "[netsim][sim]") {
  const Trace t = Trace::load(kvstream::testing::data_dir() + "/traces/mahimahi/Verizon-LTE-short.down");
  Simulator sim(t);
  const double end = sim.send(3 * t.bytes_per_period(), 0);
  CHECK(end == Approx(3 * t.period_s()).epsilon(0.01));
  // stepwise sends match the one-shot answer when each starts before the previous finishes
  Simulator a(t), b(t);
  double at = 0, last = 0;
  for (int i = 0; i < 50; ++i) {
    last = a.send(200'000, at);
    at += 0.01;
  }
  CHECK(last == Approx(b.send(50 * 200'000, 0)).margin(1e-9));
}

TEST_CASE("simulator: batch helper and many traces", "[netsim][sim]") {
  const Trace t = Trace::load("const:8mbit");
  std::vector<SimSend> sends{{1'000'000, 0.0}, {1'000'000, 0.1}, {0, 3.0}};
  const auto r = simulate(t, sends, 0.02);
  REQUIRE(r.size() == 3);
  CHECK(r[0] == Approx(1.02).margin(2e-3));
  CHECK(r[1] == Approx(2.02).margin(2e-3));
  CHECK(r[2] == Approx(3.02));
}

TEST_CASE("simulator and link add the trace's own path delay", "[netsim][sim]") {
  const Trace t = Trace::parse("# kvstream: delay_ms=100\n0 8\n1 8\n");  // 1 MB/s, 100 ms path
  Simulator sim(t, 0.02);
  CHECK(sim.delay_s() == Approx(0.12));
  CHECK(sim.send(1'000'000, 0) == Approx(1.12));
  LinkModel link(t, LinkConfig{ms_ns(5), 0, QueuePolicy::kBackpressure});
  CHECK(link.config().delay_ns == ms_ns(105));
}

TEST_CASE("simulator: a rate trace costs O(log n) per send, at any rate", "[netsim][sim]") {
  // 10 Gbit/s for an hour as 3600 rate segments; 10^4 stepwise sends of 1 GB each.
  std::string content;
  for (int s = 0; s < 3600; ++s) content += std::to_string(s) + " 10000\n";
  Simulator sim(Trace::parse(content), 0.0);
  double at = 0;
  for (int i = 0; i < 10000; ++i) at = sim.send(1'250'000'000, at);
  CHECK(at == Approx(10000.0));
  CHECK(sim.bytes_sent() == 12'500'000'000'000ull);
}
