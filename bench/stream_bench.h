// The streaming benchmark matrix (`kvstream bench stream`): link families x one-way delays x SLO
// fractions, every policy simulated on every (trace, delay), SLO = fraction x the TTFT policy q8
// needs there. It checks the controller's promises cell by cell.
//
// Contract: deterministic for given inputs (decode times are measured once, by the caller);
// `jobs` threads share the work (each (trace, delay) is one unit). Throws std::runtime_error if a
// trace cannot be loaded. Output (JSON):
//   "config": what ran;
//   "cells": one per (family, delay_ms, slo_fraction): cases, SLO hits per policy, the goal
//            counts (adaptive where the oracle meets, where any fixed policy meets), mean quality
//            of adaptive and oracle where both meet;
//   "cases": one per (trace, delay, fraction): SLO, and per policy TTFT, hit, quality, plan;
//   "ablation": (if variants) per variant the same goal counts over all cases;
//   "summary": the goals over all cells and whether each holds.
// Fixed policies (text, q8 and fixed:L for every level) do not depend on the SLO: each is
// simulated once per (trace, delay) and compared with every fraction's SLO.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "codec/progress.h"
#include "streamer/stream_sim.h"

namespace kvstream::streamer {

struct BenchFamily {
  std::string name;
  std::vector<std::string> traces;
};

// An adaptive controller with some first-estimate sources off (the ablation).
struct BenchVariant {
  std::string name;
  LinkEstimatorConfig estimator;
};

struct BenchOptions {
  std::vector<BenchFamily> families;
  std::vector<double> delays_s = {0.005, 0.04, 0.1};
  std::vector<double> slo_fractions = {0.2, 0.33, 0.5, 1.0};
  double turnaround_s = kDefaultTurnaroundS;  // see SimOptions
  double scale = 1.0;
  double prior_mbps = 1.0;
  int jobs = 1;
  bool cases = true;  // include the per-case records
  std::vector<BenchVariant> variants;
  ProgressFn progress;  // stage "units", one step per finished (trace, delay) (codec/progress.h)
  // Goals (issue 14).
  double hit_goal = 0.99, cell_hit_goal = 0.97, quality_goal = 0.97;
};

// Runs everything.
nlohmann::json run_stream_bench(const SimInputs& in, const BenchOptions& opt);

// The ablation's variants: every source off in turn, and only the prior.
std::vector<BenchVariant> ablation_variants();

}  // namespace kvstream::streamer
