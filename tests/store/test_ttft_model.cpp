// The TTFT model of a store hit (store/ttft_model.h): serial vs layer-wise pre-loading, checked
// against hand-computed pipelines, and its use in the replay.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "store/ttft_model.h"

using namespace kvstream::store;

TEST_CASE("ttft model: serial sums disk, load and prefill", "[store][ttft]") {
  CHECK(hit_ttft_s(LoadOverlap::None, 1, 2, 3, 4) == Approx(6));
  CHECK(hit_ttft_s(LoadOverlap::None, 0, 2, 3, 1) == Approx(5));
  CHECK(parse_load_overlap("none") == LoadOverlap::None);
  CHECK(parse_load_overlap("layerwise") == LoadOverlap::Layerwise);
  CHECK(load_overlap_name(LoadOverlap::Layerwise) == "layerwise");
  CHECK_THROWS_AS(parse_load_overlap("async"), std::invalid_argument);
}

TEST_CASE("ttft model: layer-wise pipeline, hand-computed cases", "[store][ttft]") {
  // Compute-bound: L = 4, load 4 -> a = 1, prefill 8 -> c = 2.
  //   A = 1 2 3 4; C_0 = 1+2 = 3, C_1 = max(2,3)+2 = 5, C_2 = 7, C_3 = 9.
  const std::vector<double> a1(4, 1.0), c2(4, 2.0);
  CHECK(pipeline_s(a1, c2) == Approx(9));
  CHECK(hit_ttft_s(LoadOverlap::Layerwise, 0, 4, 8, 4) == Approx(9));  // a + 3 max(a,c) + c = 1+6+2
  // Load-bound: L = 4, load 8 -> a = 2, prefill 4 -> c = 1.
  //   A = 2 4 6 8; C_0 = 3, C_1 = max(4,3)+1 = 5, C_2 = 7, C_3 = 9.
  const std::vector<double> a2(4, 2.0), c1(4, 1.0);
  CHECK(pipeline_s(a2, c1) == Approx(9));
  CHECK(hit_ttft_s(LoadOverlap::Layerwise, 0, 8, 4, 4) == Approx(9));
  // The disk read stays in front of the pipeline: 5 + 9.
  CHECK(hit_ttft_s(LoadOverlap::Layerwise, 5, 4, 8, 4) == Approx(14));
  // One layer: nothing overlaps, same as serial.
  CHECK(hit_ttft_s(LoadOverlap::Layerwise, 0.5, 3, 7, 1) == Approx(10.5));
  // Balanced, L = 5, load 5, prefill 5: a = c = 1 -> 1 + 4*1 + 1 = 6 (serial: 10).
  CHECK(hit_ttft_s(LoadOverlap::Layerwise, 0, 5, 5, 5) == Approx(6));
  // Nothing to load: just the prefill; nothing to prefill: just the load.
  CHECK(hit_ttft_s(LoadOverlap::Layerwise, 0, 0, 8, 4) == Approx(8));
  CHECK(hit_ttft_s(LoadOverlap::Layerwise, 0, 8, 0, 4) == Approx(8));
  // Uneven layers: loads 1 1 10, computes 5 5 1.
  //   A = 1 2 12; C_0 = 1+5 = 6, C_1 = max(2,6)+5 = 11, C_2 = max(12,11)+1 = 13.
  CHECK(pipeline_s(std::vector<double>{1, 1, 10}, std::vector<double>{5, 5, 1}) == Approx(13));
  // Load stalls twice: loads 3 1 3, computes 1 1 1: A = 3 4 7; C = 4, 5, 8.
  CHECK(pipeline_s(std::vector<double>{3, 1, 3}, std::vector<double>{1, 1, 1}) == Approx(8));
}

TEST_CASE("ttft model: closed form equals the recurrence and lies between the bounds", "[store][ttft]") {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0, 10);
  for (int i = 0; i < 500; ++i) {
    const int L = 1 + int(rng() % 40);
    const double disk = u(rng) < 5 ? 0 : u(rng), load = u(rng), prefill = u(rng);
    const double lw = hit_ttft_s(LoadOverlap::Layerwise, disk, load, prefill, L);
    const std::vector<double> a(L, load / L), c(L, prefill / L);
    CHECK(lw == Approx(disk + pipeline_s(a, c)).epsilon(1e-9));
    CHECK(lw <= hit_ttft_s(LoadOverlap::None, disk, load, prefill, L) * (1 + 1e-12));
    CHECK(lw >= disk + std::max(load, prefill) * (1 - 1e-12));  // no overlap can beat the busier resource
  }
}

TEST_CASE("ttft model: bad inputs are rejected", "[store][ttft]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_AS(hit_ttft_s(LoadOverlap::Layerwise, 0, 1, 1, 0), std::invalid_argument);
  CHECK_THROWS_AS(hit_ttft_s(LoadOverlap::Layerwise, -1, 1, 1, 2), std::invalid_argument);
  CHECK_THROWS_AS(hit_ttft_s(LoadOverlap::None, 0, nan, 1, 2), std::invalid_argument);
  CHECK_THROWS_AS(hit_ttft_s(LoadOverlap::Layerwise, 0, 1, INFINITY, 2), std::invalid_argument);
  CHECK_THROWS_AS(pipeline_s(std::vector<double>{}, std::vector<double>{}), std::invalid_argument);
  CHECK_THROWS_AS(pipeline_s(std::vector<double>{1, 2}, std::vector<double>{1}), std::invalid_argument);
  CHECK_THROWS_AS(pipeline_s(std::vector<double>{1, -2}, std::vector<double>{1, 1}), std::invalid_argument);
}
