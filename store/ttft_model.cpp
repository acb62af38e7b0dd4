#include "store/ttft_model.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace kvstream::store {
namespace {

void check_time(double t, const char* what) {
  if (!std::isfinite(t) || t < 0) throw std::invalid_argument(std::string("ttft model: ") + what + " must be finite and >= 0");
}

}  // namespace

LoadOverlap parse_load_overlap(std::string_view name) {
  if (name == "none") return LoadOverlap::None;
  if (name == "layerwise") return LoadOverlap::Layerwise;
  throw std::invalid_argument("unknown load overlap '" + std::string(name) + "' (none or layerwise)");
}

std::string load_overlap_name(LoadOverlap o) { return o == LoadOverlap::None ? "none" : "layerwise"; }

double pipeline_s(std::span<const double> load, std::span<const double> compute) {
  if (load.empty() || load.size() != compute.size())
    throw std::invalid_argument("ttft model: pipeline needs equal, non-empty per-layer loads and computes");
  double loaded = 0, computed = 0;  // A_l, C_l
  for (size_t l = 0; l < load.size(); ++l) {
    check_time(load[l], "a layer's load");
    check_time(compute[l], "a layer's compute");
    loaded += load[l];
    computed = std::max(loaded, computed) + compute[l];
  }
  return computed;
}

double hit_ttft_s(LoadOverlap overlap, double disk_s, double load_s, double compute_s, int layers) {
  check_time(disk_s, "disk time");
  check_time(load_s, "load time");
  check_time(compute_s, "compute time");
  if (layers < 1) throw std::invalid_argument("ttft model: layers must be >= 1");
  if (overlap == LoadOverlap::None) return disk_s + load_s + compute_s;
  // Equal split: the closed form a + (L-1) max(a, c) + c of the recurrence (pipeline_s).
  const double a = load_s / layers, c = compute_s / layers;
  return disk_s + a + (layers - 1) * std::max(a, c) + c;
}

}  // namespace kvstream::store
