// The adaptation controller: given what the receiver has observed (chunk arrivals, decode and
// recompute times) it decides which option (codec level or text) each chunk is fetched at, and
// when to send the next request so that the link never idles. The SAME object runs inside the live
// receiver (fed by socket events and a steady clock) and inside the simulator (fed by netsim's
// virtual time), so decisions depend only on the events below, never on where they come from.
//
// Policies: adaptive (MPC over the remaining chunks with a robust throughput estimate), fixed:L,
// q8, text, cachegen (the released CacheGen rule: the best level whose transfer fits
// SLO/num_chunks at the last measured throughput, else text), plan:o0,o1,... (replay a given plan;
// the simulator's oracle computes one from the true trace and hands it over as a plan).
//
// Contract: call on_* in time order; choose() must be called for chunks 0, 1, ... in order (one
// call per chunk). All times are seconds since the request was sent. Nothing here blocks.
#pragma once
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "streamer/plan.h"

namespace kvstream::streamer {

enum class PolicyKind { kAdaptive, kFixed, kQ8, kText, kCacheGen, kPlan, kOracle };

struct Policy {
  PolicyKind kind = PolicyKind::kAdaptive;
  std::string level;          // kFixed: level name or id
  std::vector<int> plan;      // kPlan: option per chunk (resolved by resolve_policy)
  std::string plan_text;      // kPlan: as given ("3,3,T,...", level names or indices, T = text)
  // kPlan: replay the plan with adaptive's request pacing (the plan came from an adaptive run):
  // at most two chunks before the first throughput sample, and a KV chunk chosen before it is the
  // probe (always a sample). Otherwise a plan is paced like a fixed policy.
  bool adaptive_pacing = false;
  std::string name() const;   // "adaptive", "fixed:LEVEL", "q8", "text", "cachegen", "plan:...", "oracle"
};
// Parses a policy string; throws std::invalid_argument naming the accepted forms.
Policy parse_policy(const std::string& s);
// Resolves level names against a spec (fixed/q8/plan); throws std::invalid_argument if absent.
void resolve_policy(Policy& p, const StreamSpec& spec);
// Text form of a plan ("name,name,text,...").
std::string plan_to_string(const StreamSpec& spec, const std::vector<int>& options);

struct ControllerConfig {
  double slo_s = 1.0;
  double prior_mbps = 1.0;      // throughput assumed before the first measurement
  double rtt_s = 0.02;          // request -> first byte on an idle link (measured at handshake)
  double safety = 0.9;          // the throughput estimate is discounted by this factor
  size_t window = 3;            // harmonic mean over this many recent chunk measurements
  uint64_t min_sample_bytes = 3000;  // chunks smaller than this give no throughput sample
  double pipeline_bdp = 1.5;    // keep >= this many bandwidth-delay products requested ahead
  size_t node_budget = 100000;  // plan search budget per decision
  bool allow_text = true;       // false when the receiver has no model to recompute with
  CostModel cost;               // prefill_rate etc.; decode estimates are updated online
};

struct Decision {
  size_t chunk = 0;
  int option = kText;
  double at_s = 0;
  double est_mbps = 0;
  double predicted_ttft_s = 0;
  bool feasible = true;
  uint64_t bytes = 0;          // wire bytes of the chosen option
  uint64_t window_bytes = 0;   // pipeline window at decision time
};

class Controller {
 public:
  Controller(StreamSpec spec, Policy policy, ControllerConfig cfg);

  // Events.
  // `bytes_so_far`: how much of the chunk's frame had arrived at t (0 = unknown).
  void on_first_byte(size_t chunk, double t, uint64_t bytes_so_far = 0);
  void on_last_byte(size_t chunk, double t);  // the whole chunk has arrived
  void on_ready(size_t chunk, double t, double busy_s);  // decoded / recomputed; busy_s = worker time

  // Is the next request due? `unreceived_of_last` = bytes of the most recently requested chunk's
  // frame not yet received. The next chunk is requested once that falls to the pipeline window
  // recorded when the last chunk was requested (pipeline_bdp x estimate x rtt), so the request
  // reaches the sender before the link runs dry while each decision waits for as much measurement
  // as possible. Always true before the first request; never true once every chunk is requested.
  // The oracle (which needs no measurement) requests everything at once. Adaptive chooses at
  // most two chunks before the first throughput sample (then waits for the chunk to complete).
  bool request_due(uint64_t unreceived_of_last) const;
  // Bytes of un-received data at which the next request is due (the pipeline window, now).
  uint64_t pipeline_window_bytes() const;
  // Decides the next chunk's option at time `now` and records the request.
  Decision choose(double now);

  size_t next_chunk() const { return next_; }
  size_t num_chunks() const { return spec_.chunks.size(); }
  const StreamSpec& spec() const { return spec_; }
  const Policy& policy() const { return policy_; }
  const ControllerConfig& config() const { return cfg_; }
  const std::vector<Decision>& decisions() const { return decisions_; }
  const std::vector<ChunkFacts>& facts() const { return facts_; }
  // Current robust throughput estimate, bytes/s (prior until measured).
  double estimate_bytes_per_s() const;
  std::vector<double> samples_mbps() const;

 private:
  int choose_adaptive(double now, Decision& d);
  int choose_cachegen(double now);

  StreamSpec spec_;
  Policy policy_;
  ControllerConfig cfg_;
  std::vector<ChunkFacts> facts_;
  std::vector<bool> probe_;  // [chunk] fetched as the link probe (always a throughput sample)
  std::vector<Decision> decisions_;
  std::deque<double> samples_;  // bytes/s of recent chunks
  std::vector<double> all_samples_;
  double last_sample_ = 0;
  size_t next_ = 0;
  double prev_last_byte_ = -1;
  std::vector<double> decode_sum_, decode_tokens_;  // per level, for the cost model
  double recompute_sum_ = 0, recompute_tokens_ = 0;
};

}  // namespace kvstream::streamer
