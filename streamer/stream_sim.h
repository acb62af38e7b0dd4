// The streaming simulator: replays the receiver's protocol (handshake, manifest, pipelined chunk
// requests, chunk arrivals, decode and recompute workers) in virtual time over a netsim trace,
// driving the very same Controller as the live receiver. Also computes the oracle's plan.
//
// Contract: simulate_stream() is deterministic for given inputs. Time 0 = the request is sent
// (HELLO and REQUEST leave together), at trace time start_s. The link model is netsim::Simulator
// (the relay's LinkModel): sender -> receiver bytes are shaped by the trace and delayed by delay_s
// (plus the trace's own path delay); requests and CANCELs are only delayed. The sender serves a
// connection's requests one at a time in arrival order, each answer turnaround_s after the later
// of its request's arrival and the previous answer (queued FIFO behind earlier data): the time a
// real sender and relay take to read a request and put the answer on the link; a CANCEL that
// reaches it before then replaces the answer, one that comes later changes nothing (the live
// sender behaves the same: it cannot recall bytes it has written). What the receiver sees is modelled as it sees it
// live: a read holds every byte that arrived within read_burst_s of its first (the relay releases
// bytes on a 0.25 ms tick), the handshake is measured on HELLO_ACK + MANIFEST, and every MANIFEST
// and CHUNK_DATA carries sender_report, what the sender's TCP_INFO says behind the relay. The true
// decode time of (chunk, level) and the recompute cost come from SimInputs (measured by the caller
// on the real codec/model, or --prefill-rate); the controller's cost model starts from the mean
// decode time per level (a receiver knows its own decode speed).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "netsim/trace.h"
#include "streamer/controller.h"
#include "streamer/result.h"
#include "streamer/wire.h"

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

inline constexpr double kDefaultTurnaroundS = 0.3e-3;

// The link report of a sender whose TCP connection ends at `kvstream relay` on loopback: a
// loopback RTT, a loopback congestion window, and an application-limited delivery rate (the
// sender writes a chunk and then waits for the next request). Measured with `kvstream recv
// --json` over the relay (docs/RESULTS.md, "Controller across regimes").
LinkReport relay_link_report();

struct SimOptions {
  double delay_s = 0.01;  // one-way propagation delay (RTT = 2 x delay)
  // Request reaches the sender side -> its answer enters the shaped link. Live over the relay this
  // is the relay's release of the request (its timer, >= 0.25 ms tick spacing) plus the sender's
  // read and reply: 0.2-0.5 ms seen on the 2-core VM (docs/RESULTS.md, Streaming, "Live over the trace-shaped relay").
  // It matters on Mahimahi traces, whose delivery opportunities are whole milliseconds: an answer
  // ready 0.1 ms after an opportunity waits for the next one.
  double turnaround_s = kDefaultTurnaroundS;
  double slo_s = 1.0;
  double start_s = 0;              // trace time at which the fetch starts
  double read_burst_s = 0.25e-3;   // a read holds what arrived within this after its first byte
  LinkReport sender_report = relay_link_report();
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
