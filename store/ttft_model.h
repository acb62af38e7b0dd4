// TTFT model of a store hit: how loading a stored context overlaps (or not) with the prefill of
// the tokens that were not reused. Pure functions; the replay (bench/replay.h) feeds them.
//
// A hit's costs: disk_s (reading the record from SSD into host memory: disk hits only), load_s
// (moving the chosen level's bytes host -> GPU plus decoding them) and compute_s (prefill of the
// tokens that were not reused: the new prompt, plus any history the store did not hold).
//
// - LoadOverlap::None (serial): TTFT = disk_s + load_s + compute_s.
// - LoadOverlap::Layerwise (AttentionStore's layer-wise pre-loading): the load is split into L
//   per-layer loads a_l = load_s / L and the prefill into L per-layer computes c_l = compute_s / L.
//   One load channel runs the a_l back to back; layer l's compute needs its own load done and the
//   previous layer's compute done. Finish times:
//       A_l = a_0 + ... + a_l                      (layer l loaded)
//       C_l = max(A_l, C_{l-1}) + c_l,  C_{-1} = 0 (layer l computed)
//       TTFT = disk_s + C_{L-1}
//   With equal per-layer parts (a_l = a, c_l = c) this is
//       C_{L-1} = a_0 + sum_{l=0}^{L-1} max(a_{l+1}, c_l)   with a_L = 0
//               = a + (L-1) * max(a, c) + c.
//   The disk read is not split (a record is one file read before its layers can be handed out);
//   it stays serial in front of the pipeline, which is the conservative choice.
//   Assumption behind a_l = load_s / L: the codec's value order puts each layer's values first to
//   last in every rANS stream (value i = ((layer*2+kind)*tokens+t)*kv_dim+c goes to stream
//   i % streams), so a decoder can hand out layer l once its values are decoded, and the level's
//   bytes are spread evenly over layers.
// Contract: inputs are finite and >= 0 and layers >= 1 (std::invalid_argument otherwise).
#pragma once
#include <span>
#include <string>
#include <string_view>

namespace kvstream::store {

enum class LoadOverlap { None, Layerwise };

// "none" or "layerwise" (std::invalid_argument otherwise), and back.
LoadOverlap parse_load_overlap(std::string_view name);
std::string load_overlap_name(LoadOverlap o);

// C_{L-1} of the recurrence above for arbitrary per-layer loads and computes (same length >= 1).
double pipeline_s(std::span<const double> load, std::span<const double> compute);

// TTFT of a hit under the chosen overlap (equal per-layer split for Layerwise).
double hit_ttft_s(LoadOverlap overlap, double disk_s, double load_s, double compute_s, int layers);

}  // namespace kvstream::store
