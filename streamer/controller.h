// The adaptation controller: given what the receiver has observed (the handshake, the sender's
// link reports, chunk arrivals, decode and recompute times) it decides which option (codec level
// or text) each chunk is fetched at, and when to send the next request. The SAME object runs
// inside the live receiver (fed by socket events and a steady clock) and inside the simulator (fed
// by netsim's virtual time), so decisions depend only on the events below, never on where they
// come from.
//
// Policies: adaptive, fixed:L, q8, text, cachegen (the released CacheGen rule: the best level
// whose transfer fits SLO/num_chunks at the last measured throughput, else text), plan:o0,o1,...
// (replay a given plan; the simulator's oracle computes one from the true trace and hands it over).
//
// Adaptive, right by construction rather than by tuning (docs/RESULTS.md, "Controller across
// regimes"):
// - A measured first estimate: a LinkEstimator fed by the handshake, the sender's TCP_INFO
//   reports, the remembered estimate of this sender and each chunk; its spread is wide while
//   little is known.
// - Robust MPC: the plan maximising quality whose predicted TTFT meets the SLO at the pessimistic
//   rate r_lo = quantile(lo_quantile) of the belief (plan.h's exact search).
// - Insurance: each chunk's option must keep the SLO reachable at the slow rate
//   r_slow = quantile(slow_quantile) whenever some other option would (compared by required rate,
//   robust_plan.h); the continuations compared include the all-text plan and every fixed level,
//   so a step that a fixed plan would survive and this one would not is never taken. When no plan
//   meets the SLO at r_lo the most robust option is taken (lowest required rate), and when none
//   can meet it at any rate, the fastest plan at r_lo (best effort).
// - Pacing: a request is due when the chunk in flight is down to a bandwidth-delay window, or when
//   the SLO leaves too few round trips to wait (even an infinitely fast link needs one round trip
//   per wave of requests), and at most two chunks go out before the first sample unless the round
//   trips demand more.
// - Rescue: a chunk whose KV (or text) is late is recomputed from the manifest's token ids at the
//   latest moment an all-text continuation still meets the SLO (Decision::rescue_s), so a choice
//   never loses an SLO that recomputing from there would have met, however the link behaves.
// - Abandonment: a chunk in flight past the time its bytes need at r_slow caps the belief at the
//   rate it is achieving (on_stalled, at watch_deadline()); requested chunks whose answer has not
//   started are then offered for replacement by text (or the smallest level) with a CANCEL
//   (replacements()).
//
// Contract: call on_* in time order; choose() must be called for chunks 0, 1, ... in order (one
// call per chunk). All times are seconds since the request was sent. Nothing here blocks.
#pragma once
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <string>
#include <vector>

#include "streamer/link_estimator.h"
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
  double prior_mbps = 1.0;      // centre of the belief before anything is measured (very wide)
  double rtt_s = 0.02;          // request -> first byte on an idle link (measured at handshake)
  uint64_t min_sample_bytes = 1500;  // a chunk smaller than one MTU gives no throughput sample
  double pipeline_bdp = 1.5;    // keep >= this many bandwidth-delay products requested ahead
  size_t node_budget = 20000;   // plan search budget per decision
  bool allow_text = true;       // false when the receiver has no model to recompute with
  double lo_quantile = 0.10;    // the pessimistic rate robust MPC plans on
  double slow_quantile = 0.02;  // the slow case the insurance rule protects against
  LinkEstimator::Config estimator;  // which sources are used (ablation), window
  LinkMemory memory;            // the remembered estimate of this sender, if any
  CostModel cost;               // prefill_rate etc.; decode estimates are updated online
};

struct Decision {
  size_t chunk = 0;
  int option = kText;
  double at_s = 0;
  double est_mbps = 0;         // the belief's centre when this chunk was chosen
  double lo_mbps = 0;          // its pessimistic rate (adaptive)
  double predicted_ttft_s = 0;
  bool feasible = true;
  uint64_t bytes = 0;          // wire bytes of the chosen option
  uint64_t window_bytes = 0;   // pipeline window at decision time
  std::string rule;            // adaptive: "mpc", "insured", "robust" or "best-effort"
  // Rescue (adaptive, and plans replayed with adaptive pacing): if this chunk is not ready and
  // its recompute could start at or after rescue_s while neither its KV is decoded nor its text has
  // arrived, the receiver recomputes it from the manifest's token ids (DecodePipeline::rescue).
  // rescue_s is the latest start of this chunk's recompute that still meets the SLO if it and
  // every later chunk are recomputed: SLO - first token - upgrade_margin(SLO) - the recompute of
  // chunks >= this one. +inf (no rescue) when that time had already passed at the decision (an
  // all-text continuation could not meet the SLO anyway) or when the receiver cannot recompute.
  // A recompute that can only start later than rescue_latest_s = rescue_s + upgrade_margin(SLO)
  // (the earlier chunks were late) is no rescue: the chunk then waits for what it was fetched as.
  double rescue_s = std::numeric_limits<double>::infinity();
  double rescue_latest_s = std::numeric_limits<double>::infinity();
};

// A text chunk fetched also at a KV level, after every planned request, as insurance against a
// link that stalls while the recompute chain waits (DecodePipeline::hedge): the KV is used only if
// the chunk's recompute has not started by deadline_s.
// An upgrade (upgrade = true): a KV chunk fetched again at a better level, last; once every chunk
// is ready the receiver waits for upgrades until deadline_s at most, and uses those decoded by then.
struct Hedge {
  size_t chunk = 0;
  int option = 0;
  double deadline_s = 0;
  bool upgrade = false;
};

// A requested chunk the controller would rather fetch at another option (sent as a CANCEL).
struct Replacement {
  size_t chunk = 0;
  int option = kText;
};

class Controller {
 public:
  Controller(StreamSpec spec, Policy policy, ControllerConfig cfg);

  // Events.
  // The handshake: HELLO_ACK + MANIFEST (+ PROFILE) were `total_bytes`; the first read held
  // `first_read_bytes` at `first_t`; the last byte came at `last_t`.
  void on_handshake(uint64_t total_bytes, uint64_t first_read_bytes, double first_t, double last_t);
  void on_link_report(const LinkReport& r);  // from MANIFEST and every CHUNK_DATA
  // `bytes_so_far`: how much of the chunk's frame had arrived at t (0 = unknown).
  void on_first_byte(size_t chunk, double t, uint64_t bytes_so_far = 0);
  void on_last_byte(size_t chunk, double t);  // the whole chunk has arrived
  void on_ready(size_t chunk, double t, double busy_s);  // decoded / recomputed; busy_s = worker time
  // The chunk in flight (the oldest requested one not complete) had `bytes_received` of its frame
  // at t >= watch_deadline(): caps the belief at the rate that implies.
  void on_stalled(double t, uint64_t bytes_received);
  // When on_stalled should be called if the chunk in flight has not completed (+inf: never).
  double watch_deadline() const;
  // The next time after `now` at which the controller wants to be asked again even if nothing
  // arrives: the stall deadline, or when the SLO's round-trip budget next shrinks (+inf: none).
  // The driver then calls on_stalled (if past watch_deadline()) and request_due.
  double next_wakeup(double now) const;
  // After on_stalled: requested chunks to ask the sender to replace (each offered once).
  std::vector<Replacement> replacements();
  // The sender answered `chunk` at `option` (the original, or the replacement when the CANCEL
  // reached it in time).
  void on_served(size_t chunk, int option);

  // Once every chunk has been chosen: the hedges and upgrades to fetch now, in that order, returned
  // once (adaptive and plans replayed with adaptive pacing). Every text chunk is hedged at the
  // smallest level; its deadline is the latest start of its recompute that still meets the SLO if
  // every later text chunk is recomputed too (SLO - first token - the recompute of this and every
  // later text chunk). KV chunks below the best agreement are upgraded to the best level (fewest
  // bytes among equals), in chunk order, while the belief's 98 % quantile says they can arrive by
  // the upgrade deadline (SLO - first token - upgrade_margin(SLO)).
  std::vector<Hedge> hedges(double now);
  // Room left after the upgrade deadline for the receiver's timer and finishing (live).
  static double upgrade_margin(double slo_s) { return 0.5e-3 + 0.01 * slo_s; }

  // Is the next request due at `now`? `unreceived_of_last` = bytes of the most recently
  // requested chunk's frame not yet received. Always true before the first request; never true
  // once every chunk is requested. Fixed plans and the oracle request everything at once (nothing
  // is gained by waiting); adaptive, cachegen and plans with adaptive pacing follow the pacing
  // rule in the header comment.
  bool request_due(uint64_t unreceived_of_last, double now) const;
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
  const LinkEstimator& estimator() const { return est_; }
  // The belief's centre, bytes/s (the prior until measured).
  double estimate_bytes_per_s() const { return est_.centre(); }
  std::vector<double> samples_mbps() const { return all_samples_; }

 private:
  int choose_adaptive(double now, Decision& d);
  int choose_cachegen(double now);
  bool adaptive_paced() const;
  // Predicted TTFT with chunks < next_ as recorded, chunk next_.. at `rest`, over link `tm`.
  double predict(const TransferModel& tm, const std::vector<int>& rest, double now) const;
  PipelineState state_at(const TransferModel& tm, double now) const;
  double required(const std::vector<int>& rest, double now) const;
  double tail_s() const;
  double rescue_deadline(double now) const;  // Decision::rescue_s of chunk next_
  bool insured() const;  // hedges, upgrades and rescues: adaptive and plans replayed with its pacing

  StreamSpec spec_;
  Policy policy_;
  ControllerConfig cfg_;
  LinkEstimator est_;
  std::vector<int> options_;  // pareto_options()
  std::vector<ChunkFacts> facts_;
  std::vector<Decision> decisions_;
  std::vector<double> all_samples_;
  double last_sample_bps_ = 0;
  size_t next_ = 0;
  size_t wave_ = 0;  // requests since the last chunk completed
  std::vector<int> planned_;  // adaptive: the last MPC plan, by chunk (empty before the first)
  double prev_last_byte_ = -1;
  bool stalled_ = false;
  std::vector<bool> offered_;  // [chunk] offered for replacement
  std::vector<bool> idle_request_;  // [chunk] requested when nothing was in flight
  bool hedged_ = false;
  std::vector<double> decode_sum_, decode_tokens_;  // per level, for the cost model
  double recompute_sum_ = 0, recompute_tokens_ = 0;
};

}  // namespace kvstream::streamer
