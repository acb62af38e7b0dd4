// Trace parsing (Mahimahi, cooked, const), looping, scaling, stats and errors, on synthetic
// traces with known answers and on the shared real traces.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include "netsim/trace.h"
#include "tests/test_data.h"

using namespace kvstream::netsim;
namespace fs = std::filesystem;

static constexpr TimeNs ms(double v) { return static_cast<TimeNs>(v * 1e6); }

TEST_CASE("mahimahi: one packet per ms, looping", "[netsim][trace]") {
  const Trace t = Trace::parse("1\n");
  CHECK(t.format() == TraceFormat::kMahimahi);
  CHECK(t.period_ns() == ms(1));
  CHECK(t.mean_bps() == Approx(12e6));
  // Mahimahi plays "1" as one opportunity at 1 ms, 2 ms, ...: none at t = 0.
  CHECK(t.cumulative_bytes(0) == 0);
  CHECK(t.cumulative_bytes(ms(1) - 1) == 0);
  CHECK(t.cumulative_bytes(ms(1)) == 1500);
  CHECK(t.cumulative_bytes(ms(10)) == 15000);
  CHECK(t.cumulative_bytes(ms(1000)) == 1'500'000);
  CHECK(t.bytes_deliverable(ms(3), ms(7)) == 4 * 1500);
  CHECK(t.time_at_cumulative(1) == ms(1));
  CHECK(t.time_at_cumulative(1500) == ms(1));
  CHECK(t.time_at_cumulative(1501) == ms(2));
  CHECK(t.time_to_deliver(0, 15000) == ms(10));
  CHECK(t.time_to_deliver(ms(5), 1500) == ms(5));  // the opportunity at exactly t0 counts
}

TEST_CASE("mahimahi: repeated timestamps and the period seam", "[netsim][trace]") {
  // 2 packets at 0 ms, 3 at 5 ms, 1 at 10 ms (= the period); loop k adds 10 ms.
  const Trace t = Trace::parse("0\n0\n5\n5\n5\n10\n");
  CHECK(t.period_ns() == ms(10));
  CHECK(t.bytes_per_period() == 6 * 1500);
  CHECK(t.cumulative_bytes(0) == 2 * 1500);
  CHECK(t.cumulative_bytes(ms(5)) == 5 * 1500);
  CHECK(t.cumulative_bytes(ms(10) - 1) == 5 * 1500);
  // at 10 ms: loop 0's last packet and loop 1's two at offset 0
  CHECK(t.cumulative_bytes(ms(10)) == 8 * 1500);
  CHECK(t.cumulative_bytes(ms(15)) == 11 * 1500);
  CHECK(t.cumulative_bytes(ms(20)) == 14 * 1500);
  CHECK(t.cumulative_bytes(ms(1000)) == (2 + 100 * 6) * 1500);
  CHECK(t.time_at_cumulative(3000) == 0);
  CHECK(t.time_at_cumulative(3001) == ms(5));
  CHECK(t.time_at_cumulative(12000) == ms(10));
  CHECK(t.time_at_cumulative(12001) == ms(15));
}

TEST_CASE("cooked: piecewise bandwidth, last sample holds one spacing, loops", "[netsim][trace]") {
  const Trace t = Trace::parse("0\t1.2\n1.0\t2.4\n");
  CHECK(t.format() == TraceFormat::kCooked);
  CHECK(t.period_ns() == ms(2000));
  CHECK(t.mean_bps() == Approx(1.8e6));
  CHECK(t.bytes_per_period() == 300 * 1500);
  CHECK(t.cumulative_bytes(ms(1000)) == 100 * 1500);   // 1.2 Mbit in the first second
  CHECK(t.cumulative_bytes(ms(2000)) == 300 * 1500);
  CHECK(t.cumulative_bytes(ms(3000)) == 400 * 1500);   // looped
  CHECK(t.time_at_cumulative(1500) == ms(10));        // 12000 bits at 1.2 Mbit/s
  const auto s = t.stats();
  CHECK(s.duration_s == Approx(2.0));
  CHECK(s.bins == 2);
  // bins are [i, i+1) s; the opportunity completing the first second's 1.2 Mbit falls at exactly
  // 1 s, so bins may differ from the nominal rates by one packet (0.012 Mbit)
  CHECK(s.min_mbps == Approx(1.2).margin(0.013));
  CHECK(s.max_mbps == Approx(2.4).margin(0.013));
  CHECK(s.mean_mbps == Approx(1.8));
  CHECK(s.cv == Approx(0.6 / 1.8).margin(0.01));
}

TEST_CASE("cooked: an off period stalls delivery until the trace loops", "[netsim][trace]") {
  const Trace t = Trace::parse("0 1\n1 0\n");  // 1 Mbit/s for 1 s, then nothing for 1 s
  CHECK(t.bytes_per_period() == 125000);  // a rate trace: 1 Mbit exactly
  CHECK(t.bytes_deliverable(ms(1000), ms(2000) - 1) == 0);
  const TimeNs done = t.time_to_deliver(0, 2 * t.bytes_per_period());
  CHECK(done > ms(2000));
  CHECK(done <= ms(3000));
}

TEST_CASE("const pseudo-trace and rates", "[netsim][trace]") {
  CHECK(parse_rate_bps("50mbit") == 50e6);
  CHECK(parse_rate_bps("1.5Gbit") == 1.5e9);
  CHECK(parse_rate_bps("800kbit") == 800e3);
  CHECK(parse_rate_bps("9600bit") == 9600);
  CHECK_THROWS_AS(parse_rate_bps("50mb"), TraceError);
  CHECK_THROWS_AS(parse_rate_bps("fast"), TraceError);
  CHECK_THROWS_AS(parse_rate_bps("0mbit"), TraceError);
  CHECK_THROWS_AS(parse_rate_bps("-5mbit"), TraceError);
  CHECK_THROWS_AS(Trace::load("const:"), TraceError);
  for (double mbit : {10.0, 100.0, 1000.0}) {
    const Trace t = Trace::load("const:" + std::to_string(static_cast<int>(mbit)) + "mbit");
    CHECK(t.format() == TraceFormat::kConstant);
    CHECK(t.mean_bps() == Approx(mbit * 1e6));
    // N bytes (a multiple of 1500) take exactly N*8/rate.
    const std::uint64_t n = 1500 * 1000;
    CHECK(ns_to_seconds(t.time_to_deliver(0, n)) == Approx(n * 8 / (mbit * 1e6)).epsilon(1e-6));
    const auto s = t.stats();
    CHECK(s.cv == Approx(0).margin(1e-3));
    CHECK(s.mean_mbps == Approx(mbit));
  }
}

TEST_CASE("scaling multiplies capacity, keeps timing", "[netsim][trace]") {
  const Trace t = Trace::parse("1\n", 2.5);
  CHECK(t.mean_bps() == Approx(30e6));
  CHECK(t.cumulative_bytes(ms(10)) == 37500);
  CHECK(t.time_at_cumulative(3751) == ms(2));
  const Trace half = Trace::parse("0 1.2\n1 2.4\n", 0.5);
  CHECK(half.mean_bps() == Approx(0.9e6).epsilon(1e-3));
  const Trace c = Trace::load("const:10mbit", 10);
  CHECK(c.mean_bps() == Approx(100e6));
  CHECK_THROWS_AS(Trace::parse("1\n", 0), TraceError);
  CHECK_THROWS_AS(Trace::parse("1\n", -1), TraceError);
  CHECK_THROWS_AS(Trace::parse("1\n", 1e-9), TraceError);  // rounds to zero capacity
}

TEST_CASE("bad traces give clear errors", "[netsim][trace]") {
  auto msg = [](const std::string& content) -> std::string {
    try {
      Trace::parse(content, 1.0, "bad.trace");
    } catch (const TraceError& e) {
      return e.what();
    }
    return "no error";
  };
  CHECK_THAT(msg(""), Catch::Contains("empty"));
  CHECK_THAT(msg("\n  \n# only a comment\n"), Catch::Contains("empty"));
  CHECK_THAT(msg("1\n2\nabc\n"), Catch::Contains("bad.trace:3") && Catch::Contains("integer"));
  CHECK_THAT(msg("1\n2.5\n"), Catch::Contains("bad.trace:2"));
  CHECK_THAT(msg("-1\n"), Catch::Contains("bad.trace:1"));
  CHECK_THAT(msg("5\n3\n"), Catch::Contains("non-monotonic") && Catch::Contains("bad.trace:2"));
  CHECK_THAT(msg("0\n0\n"), Catch::Contains("period is zero"));
  CHECK_THAT(msg("0 0\n1 0\n"), Catch::Contains("zero capacity"));
  CHECK_THAT(msg("0 1\n1 2\n0.5 3\n"), Catch::Contains("non-monotonic") && Catch::Contains("bad.trace:3"));
  CHECK_THAT(msg("0 1\n1 -2\n"), Catch::Contains("negative"));
  CHECK_THAT(msg("0 1\n1 nan\n"), Catch::Contains("bad.trace:2"));
  CHECK_THAT(msg("0 1\n1\n"), Catch::Contains("bad.trace:2"));
  CHECK_THAT(msg("0 1 2\n"), Catch::Contains("unknown trace format"));
  CHECK_THAT(msg("99999999999999999999999\n"), Catch::Contains("bad.trace:1"));
  CHECK_THROWS_AS(Trace::load("/nonexistent/trace.file"), TraceError);
  CHECK(Trace().empty());
}

TEST_CASE("shared Mahimahi traces: capacity equals lines x 1500 per period", "[netsim][trace]") {
  const fs::path dir = kvstream::testing::data_dir() + "/traces/mahimahi";
  REQUIRE(fs::is_directory(dir));
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.find(".down") == std::string::npos && name.find(".up") == std::string::npos) continue;
    const Trace t = Trace::load(e.path().string());
    std::ifstream in(e.path());
    std::string line, last;
    std::uint64_t lines = 0;
    while (std::getline(in, line))
      if (!line.empty()) ++lines, last = line;
    CHECK(t.bytes_per_period() == lines * 1500);
    CHECK(t.period_ns() == std::stoll(last) * 1'000'000);
    // looping: k periods carry k times the bytes
    CHECK(t.cumulative_bytes(3 * t.period_ns() + 5) - t.cumulative_bytes(t.period_ns() + 5) ==
          2 * t.bytes_per_period());
    const double mbps = t.mean_bps() / 1e6;
    CHECK(mbps > 0.4);   // README: means range from 0.5 (Verizon-EVDO)
    CHECK(mbps < 17.0);  // to 16.7 Mbps (TMobile-LTE-short)
    ++n;
  }
  CHECK(n >= 5);
  CHECK(Trace::load(dir.string() + "/TMobile-LTE-short.down").mean_bps() / 1e6 == Approx(16.7).epsilon(0.01));
}

TEST_CASE("shared cooked traces (FCC, Norway) load and average ~1.3 Mbit/s", "[netsim][trace]") {
  const fs::path dir = kvstream::testing::data_dir() + "/traces/fcc-norway";
  REQUIRE(fs::is_directory(dir));
  int n = 0;
  double sum = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    const Trace t = Trace::load(e.path().string());
    CHECK(t.format() == TraceFormat::kCooked);
    CHECK(t.period_s() > 10);
    sum += t.mean_bps() / 1e6;
    ++n;
  }
  CHECK(n == 40);
  CHECK(sum / n == Approx(1.3).epsilon(0.35));
}

TEST_CASE("cooked: repeated timestamps split their interval in file order and decreasing time stays an error",
          "[netsim][trace]") {
  // Issue 14: 30 of 175 real 4G traces repeat a timestamp ("44.000000 s after 44.000000 s").
  const Trace t = Trace::parse("43 1\n44 2\n44 4\n45 1\n46 1\n");
  CHECK(t.format() == TraceFormat::kCooked);
  CHECK(t.period_ns() == ms(4000));
  // [43, 44) at 1, [44, 44.5) at 2, [44.5, 45) at 4, then 1 and 1 (the last holds one spacing)
  CHECK(t.cumulative_bytes(ms(1000)) == 125000);
  CHECK(t.cumulative_bytes(ms(1500)) == 125000 + 125000);
  CHECK(t.cumulative_bytes(ms(2000)) == 125000 + 125000 + 250000);
  CHECK(t.bytes_per_period() == 125000 * 6);
  // three samples of one instant, and a repeated last line
  const Trace u = Trace::parse("0 3\n0 6\n0 9\n");
  CHECK(u.period_ns() == ms(1000));
  CHECK(u.mean_bps() == Approx(6e6));
  CHECK(Trace::parse("0 1\n1 2\n1 2\n").mean_bps() == Approx(1.5e6));
  // a file without repeats reads exactly as a piecewise-constant trace
  CHECK(Trace::parse("0 1\n1 3\n").bytes_per_period() == 125000 * 4);
  CHECK_THROWS_WITH(Trace::parse("0 1\n2 1\n1 1\n", 1.0, "dec.trace"),
                    Catch::Contains("dec.trace:3") && Catch::Contains("non-monotonic"));
}

TEST_CASE("cooked traces are rate segments: memory O(lines), exact integrated queries", "[netsim][trace]") {
  // An hour of 10 Gbit/s (one line per second) is 3600 segments, not 3 billion packets.
  std::string content;
  for (int s = 0; s < 3600; ++s) content += std::to_string(s) + " " + std::to_string(s % 2 ? 12000 : 8000) + "\n";
  const Trace t = Trace::parse(content);
  CHECK(t.is_rate());
  CHECK(t.segments() == 3600);
  CHECK(t.opportunities_per_period() == 0);
  CHECK(t.mean_bps() == Approx(10e9));
  CHECK(t.bytes_per_period() == 4'500'000'000'000ull);
  CHECK(t.cumulative_bytes(ms(1000)) == 1'000'000'000ull);
  CHECK(t.cumulative_bytes(ms(1500)) == 1'750'000'000ull);
  CHECK(t.cumulative_bytes(3600 * kNsPerSec + ms(500)) == 4'500'000'000'000ull + 500'000'000ull);
  // the inverse: the earliest ns at which a position is carried
  for (std::uint64_t p : {1ull, 999ull, 1'000'000'001ull, 12'345'678'901ull, 4'500'000'000'001ull, 9'999'999'999'999ull}) {
    const TimeNs at = t.time_at_cumulative(p);
    CHECK(t.cumulative_bytes(at) >= p);
    CHECK(t.cumulative_bytes(at - 1) < p);
  }
  CHECK(t.time_at_cumulative(1'000'000'000) == ms(1000));
  CHECK(t.time_to_deliver(ms(500), 1'000'000'000) == ms(1000) + ms(1000) / 3);
  const auto st = t.stats();
  CHECK(st.bins == 3600);
  CHECK(st.min_mbps == Approx(8000));
  CHECK(st.max_mbps == Approx(12000));
  CHECK(st.cv == Approx(0.2));
  // a fractional rate, sub-second lines: still exact to the byte over a segment
  const Trace f = Trace::parse("0 0.5\n0.25 0.001\n0.5 7.25\n");
  CHECK(f.cumulative_bytes(ms(250)) == 15625);
  CHECK(f.cumulative_bytes(ms(500)) == 15625 + 31);
  CHECK(f.stats().bins == 1);  // a 0.75 s period is one bin: the mean
}

TEST_CASE("traces are bounded by their representation (issue 13, finding 5)", "[netsim][trace]") {
  // 30 bytes of cooked trace asked for ~1e17 packet entries; as rate segments it is two lines,
  // and its capacity (10^7 Mbit/s for 2 x 10^8 s, 2.5e20 bytes) cannot be represented: a clear
  // error, not bad_alloc.
  CHECK_THROWS_WITH(Trace::parse("0 10000000\n100000000 10000000\n", 1.0, "huge.trace"),
                    Catch::Contains("huge.trace") && Catch::Contains("cannot be represented"));
  // the largest representable rate over a long time loads as two segments
  const Trace big = Trace::parse("0 10000000\n100000 10000000\n");
  CHECK(big.segments() == 1);
  CHECK(big.mean_bps() == Approx(1e13));
  CHECK(big.stats().bins == 200000);
  // 16 bytes of Mahimahi trace made `netsim stats` allocate 1e9 bins; the stats are O(lines)
  const Trace mm = Trace::parse("1\n1000000000000\n");
  CHECK(mm.period_ns() == 1'000'000'000'000 * 1'000'000);
  const auto s = mm.stats();
  CHECK(s.bins == 1'000'000'000);
  CHECK(s.max_mbps == Approx(0.012));
  CHECK(s.min_mbps == 0);
  // queries far out in time answer or say they overflow
  CHECK(mm.cumulative_bytes(mm.period_ns() * 3) == 3 * 3000);  // two 1500-byte lines per loop
  CHECK_THROWS_WITH(big.time_at_cumulative(std::numeric_limits<std::uint64_t>::max() - 5), Catch::Contains("overflow"));
  CHECK_THROWS_WITH(big.cumulative_bytes(std::numeric_limits<TimeNs>::max()), Catch::Contains("overflow"));
}

TEST_CASE("a trace may carry its path's one-way delay", "[netsim][trace]") {
  CHECK(Trace::parse("# kvstream: delay_ms=150\n0 5\n1 5\n").path_delay_ns() == ms(150));
  CHECK(Trace::parse("1\n# kvstream: delay_ms=2.5\n").path_delay_ns() == ms(2.5));
  CHECK(Trace::parse("0 5\n").path_delay_ns() == 0);
  CHECK_THROWS_WITH(Trace::parse("# kvstream: delay_ms=-1\n0 5\n"), Catch::Contains("delay_ms"));
}
