// Streaming simulator and oracle (see stream_sim.h).
#include "streamer/stream_sim.h"

#include <algorithm>
#include <limits>
#include <queue>
#include <stdexcept>

#include "netsim/simulator.h"
#include "streamer/wire.h"

namespace kvstream::streamer {

namespace {

uint64_t hello_ack_bytes() {
  HelloAck a;
  a.agent = "kvstream-send/1";
  return encode(a).size();
}

struct Event {
  double t;
  uint64_t seq;
  int kind;  // 0 first byte, 1 last byte, 2 ready
  size_t chunk;
  double busy;
  uint64_t bytes = 0;  // kind 0: bytes of the chunk arrived by then
  bool operator>(const Event& o) const { return t != o.t ? t > o.t : seq > o.seq; }
};

double true_busy(const SimInputs& in, size_t j, int option) {
  const double tokens = in.spec.chunks[j].tokens;
  if (option == kText) return in.prefill_rate > 0 ? tokens / in.prefill_rate : tokens * in.recompute_s_per_token;
  if (j < in.decode_s.size() && size_t(option) < in.decode_s[j].size()) return in.decode_s[j][size_t(option)];
  return 0.0;
}

void validate(const SimInputs& in, const SimOptions& opt) {
  if (in.spec.chunks.empty()) throw std::invalid_argument("simulate: context has no chunks");
  if (!(opt.slo_s > 0)) throw std::invalid_argument("simulate: SLO must be positive");
  if (opt.delay_s < 0) throw std::invalid_argument("simulate: negative delay");
  if (opt.turnaround_s < 0) throw std::invalid_argument("simulate: negative turnaround");
}

}  // namespace

std::vector<int> oracle_plan(const SimInputs& in, const netsim::Trace& trace, const SimOptions& opt,
                             double* predicted_ttft_s) {
  validate(in, opt);
  netsim::Simulator net(trace, opt.delay_s);
  const double d = opt.delay_s;
  const double ta = opt.turnaround_s;
  net.send(hello_ack_bytes(), d + ta);
  const double man_arr = net.send(in.manifest_bytes, d + ta);
  double profile_arr = man_arr;
  if (in.fetch_profile) profile_arr = net.send(in.profile_bytes, man_arr + d + ta);

  // Every chunk is requested when the manifest arrives (the oracle needs no measurement), so the
  // link stays backlogged: chunk bytes join the queue at man_arr + d behind what is still queued.
  TransferModel tm;
  tm.rtt_s = 2 * d + ta;
  const double t_queue = man_arr + d + ta;
  tm.finish = [&trace, d](double start, uint64_t bytes) {
    const double dep = std::max(0.0, start - d);
    return netsim::ns_to_seconds(trace.time_to_deliver(netsim::seconds_to_ns(dep), bytes)) + d;
  };
  tm.finish_cumulative = [&net, t_queue](uint64_t cum) { return net.peek(cum, t_queue); };
  CostModel cost;
  cost.prefill_rate = in.prefill_rate;
  cost.recompute_s_per_token = in.recompute_s_per_token;
  cost.first_token_s = in.first_token_s;
  cost.decode_s_exact = in.decode_s;
  PipelineState st;
  st.link_free = profile_arr;
  st.decode_free = profile_arr;
  st.now = man_arr;
  PlanSearch ps;
  ps.spec = &in.spec;
  ps.cost = &cost;
  ps.transfer = &tm;
  ps.node_budget = opt.oracle_node_budget;
  for (size_t l = 0; l < in.spec.levels.size(); ++l) ps.allowed.push_back(int(l));
  ps.allowed.push_back(kText);
  const PlanResult r = ps.run(st, 0, man_arr + 2 * d + ta, opt.slo_s);
  if (predicted_ttft_s) *predicted_ttft_s = r.predicted_ttft;
  return r.options;
}

StreamResult simulate_stream(const SimInputs& in, const netsim::Trace& trace, const SimOptions& opt) {
  validate(in, opt);
  const StreamSpec& spec = in.spec;
  const size_t n = spec.chunks.size();
  netsim::Simulator net(trace, opt.delay_s);
  const double d = opt.delay_s;
  const double ta = opt.turnaround_s;
  const uint64_t ack_bytes = hello_ack_bytes();
  const double ack_arr = net.send(ack_bytes, d + ta);
  const double man_arr = net.send(in.manifest_bytes, d + ta);
  uint64_t total_bytes = ack_bytes + in.manifest_bytes;
  double profile_arr = man_arr;
  if (in.fetch_profile) {
    profile_arr = net.send(in.profile_bytes, man_arr + d + ta);
    total_bytes += in.profile_bytes;
  }

  ControllerConfig cfg = opt.controller;
  cfg.slo_s = opt.slo_s;
  cfg.rtt_s = ack_arr;  // what the live receiver measures: HELLO sent -> HELLO_ACK received
  cfg.cost.prefill_rate = in.prefill_rate;
  cfg.cost.first_token_s = in.first_token_s;
  Policy pol = opt.policy;
  double oracle_pred = -1;
  if (pol.kind == PolicyKind::kOracle) pol.plan = oracle_plan(in, trace, opt, &oracle_pred);
  Controller ctl(spec, pol, cfg);

  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> pq;
  uint64_t seq = 0;
  auto feed_until = [&](double T) {
    while (!pq.empty() && pq.top().t <= T) {
      const Event e = pq.top();
      pq.pop();
      if (e.kind == 0) ctl.on_first_byte(e.chunk, e.t, e.bytes);
      else if (e.kind == 1) ctl.on_last_byte(e.chunk, e.t);
      else ctl.on_ready(e.chunk, e.t, e.busy);
    }
  };

  std::vector<double> first(n), last(n), ready(n), busy(n);
  double decode_free = profile_arr, compute_free = 0, prefix_ready = 0;
  double now = man_arr;
  double predicted = -1;
  while (ctl.next_chunk() < n) {
    feed_until(now);
    const size_t j = ctl.next_chunk();
    const Decision dec = ctl.choose(now);
    if (predicted < 0 && pol.kind == PolicyKind::kAdaptive) predicted = dec.predicted_ttft_s;
    const double at = now + d + ta;
    // The first delivery of this chunk's bytes, and how many it carried (what the receiver's
    // first read of the chunk sees).
    first[j] = net.peek(1, at);
    uint64_t lo = 1, hi = dec.bytes;  // largest b with peek(b) == first[j]
    while (lo < hi) {
      const uint64_t mid = lo + (hi - lo + 1) / 2;
      if (net.peek(mid, at) <= first[j]) lo = mid;
      else hi = mid - 1;
    }
    const uint64_t first_bytes = lo;
    const double trig = dec.bytes > dec.window_bytes ? net.peek(dec.bytes - dec.window_bytes, at) : now;
    last[j] = net.send(dec.bytes, at);
    total_bytes += dec.bytes;
    busy[j] = true_busy(in, j, dec.option);
    if (dec.option == kText) {
      const double s = std::max({last[j], prefix_ready, compute_free});
      ready[j] = s + busy[j];
      compute_free = ready[j];
    } else {
      const double s = std::max(last[j], decode_free);
      ready[j] = s + busy[j];
      decode_free = ready[j];
    }
    prefix_ready = std::max(prefix_ready, ready[j]);
    pq.push({first[j], seq++, 0, j, 0, first_bytes});
    pq.push({last[j], seq++, 1, j, 0});
    pq.push({ready[j], seq++, 2, j, busy[j]});
    if (pol.kind != PolicyKind::kOracle && ctl.next_chunk() < n) {
      // The receiver re-checks request_due() as bytes arrive: at the window crossing, and at the
      // latest when the chunk has fully arrived.
      const double t1 = std::max(now, trig);
      feed_until(t1);
      if (ctl.request_due(t1 < last[j] ? std::min(dec.bytes, dec.window_bytes) : 0)) {
        now = t1;
      } else {
        now = std::max(t1, last[j]);
      }
    }
  }
  feed_until(std::numeric_limits<double>::infinity());

  StreamResult r;
  r.context = in.context;
  r.policy = opt.policy.name();
  r.slo_ms = opt.slo_s * 1e3;
  r.ttft_ms = (prefix_ready + in.first_token_s) * 1e3;
  r.first_token_ms = in.first_token_s * 1e3;
  r.slo_met = r.ttft_ms <= r.slo_ms;
  r.bytes = total_bytes;
  r.last_byte_ms = *std::max_element(last.begin(), last.end()) * 1e3;
  r.trace = trace.name();
  r.predicted_ttft_ms = pol.kind == PolicyKind::kOracle ? oracle_pred * 1e3 : (predicted >= 0 ? predicted * 1e3 : -1);
  fill_chunks(r, ctl, busy, ready);
  std::vector<int> options;
  for (const auto& dd : ctl.decisions()) options.push_back(dd.option);
  ladder_quality(spec, options, r.greedy_agreement, r.ppl_delta_pct);
  r.quality_source = "ladder";
  r.plan = plan_to_string(spec, options);
  return r;
}

}  // namespace kvstream::streamer
