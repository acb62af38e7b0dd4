// `netsim gen`: every family parses, is deterministic per seed, and sits where its contract puts
// it relative to the KV rate.
#include <catch2/catch.hpp>

#include "netsim/trace.h"
#include "netsim/trace_gen.h"

using namespace kvstream::netsim;

namespace {
Trace gen(const std::string& family, std::uint64_t seed, double kv = 5.5) {
  GenOptions o;
  o.family = family;
  o.seed = seed;
  o.kv_mbps = kv;
  return Trace::parse(generate_trace(o), 1.0, family);
}
double mbps_between(const Trace& t, double a_s, double b_s) {
  return 8.0 * static_cast<double>(t.bytes_deliverable(seconds_to_ns(a_s), seconds_to_ns(b_s))) / (b_s - a_s) / 1e6;
}
}  // namespace

TEST_CASE("netsim gen: deterministic, every family a valid rate trace", "[netsim][gen]") {
  for (const auto& f : link_families()) {
    GenOptions o;
    o.family = f;
    o.seed = 7;
    CHECK(generate_trace(o) == generate_trace(o));
    o.seed = 8;
    const std::string other = generate_trace(o);
    o.seed = 7;
    CHECK(generate_trace(o) != other);
    const Trace t = Trace::parse(generate_trace(o));
    CHECK(t.is_rate());
    CHECK(t.period_s() == Approx(30).margin(1));
    CHECK(t.mean_bps() > 0);
  }
  CHECK_THROWS_WITH(gen("nope", 1), Catch::Contains("unknown family") && Catch::Contains("markov"));
}

TEST_CASE("netsim gen: families relative to the KV rate", "[netsim][gen]") {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    const Trace fast = gen("fast", seed, 2.0);
    CHECK(fast.mean_bps() / 1e6 >= 2.0 * 10 * 0.89);
    CHECK(fast.mean_bps() / 1e6 <= 2.0 * 1000 * 1.11);
    const Trace slow = gen("slow-start", seed);
    CHECK(mbps_between(slow, 0, 0.9) <= 5.5 * 0.05 * 1.11);  // slow for its first second
    CHECK(gen("long-rtt", seed).path_delay_ns() >= seconds_to_ns(0.08));
    CHECK(gen("long-rtt", seed).path_delay_ns() <= seconds_to_ns(0.25));
    CHECK(gen("steps", seed).stats().cv > 0.1);
  }
  // steps and markov reach outages (zero-rate stretches) in some seeds
  int outages = 0;
  for (std::uint64_t seed = 1; seed <= 20; ++seed)
    for (const char* f : {"steps", "markov"}) outages += gen(f, seed).stats().min_mbps < 0.5;
  CHECK(outages > 5);
}
