// The streaming benchmark over many traces (`kvstream bench stream`): per trace, the SLO is a
// fraction (default one third) of the TTFT that policy q8 needs on that trace; every policy is then
// simulated with that SLO, and the summary compares adaptive with the oracle and with cachegen.
//
// Contract: deterministic for given inputs (decode times are measured once, by the caller).
// Throws std::runtime_error if a trace cannot be loaded.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "codec/progress.h"
#include "streamer/stream_sim.h"

namespace kvstream::streamer {

struct BenchOptions {
  std::vector<std::string> traces;
  std::vector<std::string> policies = {"adaptive", "cachegen", "oracle", "q8", "text"};
  double slo_fraction_of_q8 = 1.0 / 3.0;
  double delay_s = 0.01;
  double turnaround_s = kDefaultTurnaroundS;  // see SimOptions
  double scale = 1.0;
  double prior_mbps = 1.0;
  ProgressFn progress;  // stage "traces", one step per finished trace (codec/progress.h)
};

// Runs everything; returns {"per_trace": [...], "summary": {...}}.
nlohmann::json run_stream_bench(const SimInputs& in, const BenchOptions& opt);

}  // namespace kvstream::streamer
