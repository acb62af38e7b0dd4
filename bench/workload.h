// Multi-turn conversation workloads (ShareGPT-like) for the store replay, made from TinyStories.
//
// Generator: sessions arrive as a Poisson process (rate sessions_per_s); each has a geometric
// number of turns with mean mean_turns (ShareGPT averages 5.75), or a heavy-tailed one (turns_dist
// lognormal: 1 + floor(X), X lognormal with mean mean_turns - 0.5 and log-space standard deviation
// turns_sigma: most sessions short, a few very long), capped at max_turns; turn k+1
// comes a think time after turn k: exponential with mean think_s_mean (default), or lognormal
// with the same mean and log-space standard deviation think_sigma (heavy-tailed, as human think
// times are often modelled). A turn is a short user prompt (prompt_sentences
// sentences) and a longer response (response_sentences), taken in order from consecutive stories
// of the text's byte range [text_begin_frac, 1) — by default the second half, disjoint from the
// first 35% that the codec profiler calibrates on. Same options and text => same workload.
//
// File format (JSON): {"format": "kvstream-workload/1", "seed", "options": {...},
// "sessions": [{"id", "arrival_s", "turns": [{"time_s", "prompt", "response"}]}]}.
// load_workload() validates it and throws std::runtime_error with the path on anything malformed.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kvstream::store {

struct WorkloadOptions {
  int sessions = 100;
  uint64_t seed = 1;
  double sessions_per_s = 0.5;
  double mean_turns = 5.75;
  int max_turns = 30;
  std::string turns_dist = "geometric";  // "geometric" | "lognormal"
  double turns_sigma = 1.5;              // lognormal only: sigma of ln(turns)
  double think_s_mean = 60.0;
  std::string think_dist = "exponential";  // "exponential" | "lognormal"
  double think_sigma = 1.5;                // lognormal only: sigma of ln(think time)
  int prompt_sentences_min = 1, prompt_sentences_max = 2;
  int response_sentences_min = 3, response_sentences_max = 6;
  double text_begin_frac = 0.5;
};

struct Turn {
  double time_s = 0;
  std::string prompt, response;
};

struct Session {
  int id = 0;
  double arrival_s = 0;
  std::vector<Turn> turns;
};

struct Workload {
  uint64_t seed = 0;
  WorkloadOptions options;
  std::vector<Session> sessions;
  size_t num_turns() const;
};

Workload generate_workload(const WorkloadOptions& opt, const std::string& text);
void save_workload(const Workload& w, const std::string& path);
Workload load_workload(const std::string& path);

}  // namespace kvstream::store
