// The streaming simulator: replays the receiver's protocol (handshake, manifest, pipelined chunk
// requests, chunk arrivals, decode and recompute workers) in virtual time over a netsim trace,
// driving the very same Controller as the live receiver. Also computes the oracle's plan.
//
// Contract: simulate_stream() is deterministic for given inputs. Time 0 = the request is sent
// (HELLO and REQUEST leave together). The link model is netsim::Simulator (the relay's LinkModel):
// sender -> receiver bytes are shaped by the trace and delayed by delay_s; requests are only
// delayed. The sender answers a request as soon as it arrives (queued FIFO behind earlier data).
// The true decode time of (chunk, level) and the recompute cost come from SimInputs (measured by
// the caller on the real codec/model, or --prefill-rate).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "netsim/trace.h"
#include "streamer/controller.h"
#include "streamer/result.h"

namespace kvstream::streamer {

struct SimInputs {
  StreamSpec spec;
  std::string context = "ctx";
  uint64_t manifest_bytes = 0;          // MANIFEST frame size
  uint64_t profile_bytes = 0;           // PROFILE frame size, fetched when fetch_profile
  bool fetch_profile = false;
  std::vector<std::vector<double>> decode_s;  // [chunk][level] true decode seconds
  double recompute_s_per_token = 2e-4;  // true recompute cost when prefill_rate == 0
  double prefill_rate = 0;              // tokens/s; 0 = recompute_s_per_token
  double first_token_s = 0;             // generating the first token after the KV is complete
};

struct SimOptions {
  double delay_s = 0.01;  // one-way propagation delay (RTT = 2 x delay)
  double slo_s = 1.0;
  Policy policy;
  ControllerConfig controller;  // slo_s, rtt_s and cost are filled in by simulate_stream
  size_t oracle_node_budget = 3000000;
};

// Runs one fetch. For policy oracle, computes the plan from the trace first (oracle_plan).
StreamResult simulate_stream(const SimInputs& in, const netsim::Trace& trace, const SimOptions& opt);

// The best plan knowing the trace: maximises quality with predicted TTFT <= SLO (or minimises TTFT
// when nothing fits), every chunk requested as soon as the manifest arrives.
std::vector<int> oracle_plan(const SimInputs& in, const netsim::Trace& trace, const SimOptions& opt,
                             double* predicted_ttft_s = nullptr);

}  // namespace kvstream::streamer
