// bench codec's harness (bench/codec_bench.h): what it reports, not how fast (timings are the
// benchmark's job, scripts/bench_*.sh).
#include <catch2/catch.hpp>

#include <sched.h>

#include "bench/codec_bench.h"
#include "codec_fixture.h"

using namespace kvstream::codec;
using kvstream::testing::real_kv;
using kvstream::testing::test_profile;

TEST_CASE("bench codec times one pinned thread on each allowed core and all cores at once alongside the all-threads decode",
          "[codec][bench]") {
  cpu_set_t set;
  CPU_ZERO(&set);
  REQUIRE(sched_getaffinity(0, sizeof(set), &set) == 0);
  const int allowed = CPU_COUNT(&set);
  const BenchReport r = bench_codec(real_kv(), test_profile(), 64, 2, 1, {}, "medium", "current");
  REQUIRE(r.entries.size() == 1);
  const BenchEntry& e = r.entries.front();
  CHECK(e.name == "medium");
  CHECK(e.decode_mbps_1t > 0);
  CHECK(e.decode_mbps_all > 0);
  // two threads asked: one pinned measurement per core, as many cores as the process may use
  CHECK(e.decode_mbps_1t_per_core.size() == size_t(std::min(2, allowed)));
  for (double v : e.decode_mbps_1t_per_core) CHECK(v > 0);
  CHECK(e.decode_mbps_all_cold > 0);
  CHECK(e.decode_mbps_1t_far_rows > 0);
  CHECK(e.scaling_vs_fastest_core_median > 0);
  CHECK(e.efficiency_vs_cores_median > 0);
  if (allowed >= 2) {  // the control: both cores at once
    CHECK(e.decode_mbps_together > 0);
    CHECK(e.vs_together_median > 0);
  } else {
    CHECK(e.decode_mbps_together == 0);
  }
  const BenchReport one = bench_codec(real_kv(), test_profile(), 64, 1, 1, {}, "medium", "current");
  CHECK(one.entries.front().decode_mbps_1t_per_core.empty());  // one thread: nothing to compare
  CHECK(one.entries.front().decode_mbps_together == 0);
  CHECK(one.entries.front().decode_mbps_all == one.entries.front().decode_mbps_1t);
}
