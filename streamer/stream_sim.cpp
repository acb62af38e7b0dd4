// Streaming simulator and oracle (see stream_sim.h): a discrete-event loop over the sender's
// answers, CANCEL arrivals, chunk arrivals, decode/recompute completions and the controller's
// wake-ups, all in virtual time.
#include "streamer/stream_sim.h"

#include <algorithm>
#include <limits>
#include <queue>
#include <stdexcept>

#include "netsim/simulator.h"

namespace kvstream::streamer {

LinkReport relay_link_report() {
  LinkReport r;
  r.valid = true;
  r.app_limited = true;
  r.srtt_us = 60;
  r.min_rtt_us = 20;
  r.cwnd_bytes = 10 * 65483;  // initial window of 10 loopback MSS
  r.delivery_kBps = 2'000'000;
  r.notsent_bytes = 0;
  return r;
}

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

uint64_t hello_ack_bytes() {
  HelloAck a;
  a.agent = "kvstream-send/1";
  return encode(a).size();
}

// The link as the fetch sees it: times relative to the request, trace time start_s + t.
struct Net {
  netsim::Simulator sim;
  double t0;
  Net(const netsim::Trace& t, double delay_s, double start_s) : sim(t, delay_s), t0(start_s) {}
  netsim::Simulator::Span send(uint64_t bytes, double at) {
    auto s = sim.send_span(bytes, at + t0);
    s.last_arrival_s -= t0;
    return s;
  }
  uint64_t arrived(const netsim::Simulator::Span& s, double t) const { return sim.arrived_by(s, t + t0); }
  double arrival(const netsim::Simulator::Span& s, uint64_t k) const { return sim.arrival_of(s, k) - t0; }
  double peek(uint64_t bytes, double at) const { return sim.peek(bytes, at + t0) - t0; }
  double delay() const { return sim.delay_s(); }
};

struct Handshake {
  double ack_arr = 0, man_arr = 0, first_t = 0;
  uint64_t total = 0, first_read = 0;
};

// HELLO_ACK and MANIFEST leave the sender together, one turnaround after HELLO + REQUEST arrive.
Handshake handshake(Net& net, const SimInputs& in, const SimOptions& opt) {
  const double at = net.delay() + opt.turnaround_s;
  Handshake h;
  const auto ack = net.send(hello_ack_bytes(), at);
  const auto man = net.send(in.manifest_bytes, at);
  h.ack_arr = ack.last_arrival_s;
  h.man_arr = man.last_arrival_s;
  h.first_t = net.arrival(ack, 1);
  h.first_read = net.arrived(ack, h.first_t + opt.read_burst_s) + net.arrived(man, h.first_t + opt.read_burst_s);
  h.total = ack.bytes() + man.bytes();
  return h;
}

double true_busy(const SimInputs& in, size_t j, int option) {
  const double tokens = in.spec.chunks[j].tokens;
  if (option == kText) return in.prefill_rate > 0 ? tokens / in.prefill_rate : tokens * in.recompute_s_per_token;
  if (j < in.decode_s.size() && size_t(option) < in.decode_s[j].size()) return in.decode_s[j][size_t(option)];
  return 0.0;
}

// Mean true decode seconds per token of each level: what a receiver knows of its decode speed.
std::vector<double> decode_per_token(const SimInputs& in) {
  std::vector<double> out(in.spec.levels.size(), 0.0);
  for (size_t l = 0; l < out.size(); ++l) {
    double s = 0, t = 0;
    for (size_t j = 0; j < in.spec.chunks.size() && j < in.decode_s.size(); ++j)
      if (l < in.decode_s[j].size()) s += in.decode_s[j][l], t += in.spec.chunks[j].tokens;
    out[l] = t > 0 ? s / t : 0.0;
  }
  return out;
}

void validate(const SimInputs& in, const SimOptions& opt) {
  if (in.spec.chunks.empty()) throw std::invalid_argument("simulate: context has no chunks");
  if (!(opt.slo_s > 0)) throw std::invalid_argument("simulate: SLO must be positive");
  if (opt.delay_s < 0) throw std::invalid_argument("simulate: negative delay");
  if (opt.turnaround_s < 0) throw std::invalid_argument("simulate: negative turnaround");
  if (opt.start_s < 0) throw std::invalid_argument("simulate: negative start time");
  if (opt.read_burst_s < 0) throw std::invalid_argument("simulate: negative read burst");
}

}  // namespace

std::vector<int> oracle_plan(const SimInputs& in, const netsim::Trace& trace, const SimOptions& opt,
                             double* predicted_ttft_s) {
  validate(in, opt);
  Net net(trace, opt.delay_s, opt.start_s);
  const double d = net.delay();
  const double ta = opt.turnaround_s;
  const Handshake hs = handshake(net, in, opt);
  const double man_arr = hs.man_arr;
  double profile_arr = man_arr;
  if (in.fetch_profile) profile_arr = net.send(in.profile_bytes, man_arr + d + ta).last_arrival_s;

  // Every chunk is requested when the manifest arrives (the oracle needs no measurement), so the
  // link stays backlogged: chunk bytes join the queue at man_arr + d behind what is still queued.
  TransferModel tm;
  tm.rtt_s = 2 * d + ta;
  const double t_queue = man_arr + d + ta;
  tm.finish = [&trace, d, &opt](double start, uint64_t bytes) {
    const double dep = std::max(0.0, start - d) + opt.start_s;
    return netsim::ns_to_seconds(trace.time_to_deliver(netsim::seconds_to_ns(dep), bytes)) + d - opt.start_s;
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
  Net net(trace, opt.delay_s, opt.start_s);
  const double d = net.delay();
  const double ta = opt.turnaround_s;
  const Handshake hs = handshake(net, in, opt);
  uint64_t total_bytes = hs.total;

  ControllerConfig cfg = opt.controller;
  cfg.slo_s = opt.slo_s;
  cfg.rtt_s = hs.ack_arr;  // what the live receiver measures: HELLO sent -> HELLO_ACK received
  cfg.cost.prefill_rate = in.prefill_rate;
  cfg.cost.first_token_s = in.first_token_s;
  if (cfg.cost.decode_s_per_token.empty()) cfg.cost.decode_s_per_token = decode_per_token(in);
  Policy pol = opt.policy;
  double oracle_pred = -1;
  if (pol.kind == PolicyKind::kOracle) pol.plan = oracle_plan(in, trace, opt, &oracle_pred);
  Controller ctl(spec, pol, cfg);
  ctl.on_handshake(hs.total, hs.first_read, hs.first_t, hs.man_arr);
  ctl.on_link_report(opt.sender_report);

  enum Kind { kProfile, kAnswer, kHedge, kUpgrade, kCancel, kFirst, kLast, kReady };
  struct Event {
    double t;
    uint64_t seq;
    Kind kind;
    size_t chunk;
    double value = 0;    // kReady: busy seconds
    uint64_t bytes = 0;  // kFirst: bytes in the first read
    int option = kText;  // kCancel: replacement
    bool operator>(const Event& o) const { return t != o.t ? t > o.t : seq > o.seq; }
  };
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> pq;
  uint64_t seq = 0;
  std::vector<int> served(n, kText);
  std::vector<bool> answered(n, false), replaced(n, false);
  std::vector<netsim::Simulator::Span> span(n);
  std::vector<double> last(n, 0), busy(n, 0);
  // The receiver's pipeline (DecodePipeline), as a timeline recomputed from what is known.
  std::vector<double> text_arr(n, kInf), kv_arr(n, kInf), kv_busy(n, 0), deadline(n, kInf);
  std::vector<int> kv_opt(n, -2), hedge_opt(n, -2), up_opt(n, -2);
  std::vector<uint64_t> kv_seq(n, 0), up_seq(n, 0);
  std::vector<double> up_arr(n, kInf), up_busy(n, 0), t_up(n, kInf);
  double up_deadline = kInf;
  std::vector<bool> reported(n, false), by_text(n, false), has_text(n, false), rescued(n, false);
  std::vector<double> rescue_at(n, kInf), rescue_latest(n, kInf);  // Decision::rescue_s, rescue_latest_s
  std::vector<double> ready(n, kInf);
  double profile_ready = in.fetch_profile ? kInf : hs.man_arr;
  // The sender serves a connection's requests one at a time in the order they reach it (one
  // worker-pool task per connection, sender.cpp), each turnaround_s: an answer is ready then.
  double sender_free = 0;
  auto answer_at = [&](double sent) { return sender_free = std::max(sent + d, sender_free) + ta; };
  if (in.fetch_profile) pq.push({answer_at(hs.man_arr), seq++, kProfile, 0});
  // Ready times given the arrivals known so far (unknown = +inf); a chunk's time is final once it
  // no longer depends on an unknown (see DecodePipeline for the rules this follows).
  auto timeline = [&](std::vector<bool>& final_out) {
    // The decode worker takes KV blobs (planned, hedges, upgrades) in arrival order.
    struct Job {
      double arr;
      uint64_t seq;
      size_t chunk;
      bool up;
    };
    std::vector<Job> order;
    for (size_t j = 0; j < n; ++j) {
      if (kv_opt[j] != -2) order.push_back({kv_arr[j], kv_seq[j], j, false});
      if (up_opt[j] != -2) order.push_back({up_arr[j], up_seq[j], j, true});
    }
    std::sort(order.begin(), order.end(), [](const Job& a, const Job& b) { return a.arr != b.arr ? a.arr < b.arr : a.seq < b.seq; });
    std::vector<double> t_dec(n, kInf);
    double decode_free = profile_ready;
    for (const Job& job : order) {
      if (job.arr == kInf) break;
      decode_free = std::max(decode_free, job.arr) + (job.up ? up_busy[job.chunk] : kv_busy[job.chunk]);
      (job.up ? t_up : t_dec)[job.chunk] = decode_free;
    }
    // Unknown inputs are +inf; a ready time that comes out finite no longer depends on them.
    auto known = [](double x) { return x < kInf ? x : 0.0; };
    double compute_free = 0, prefix = 0;
    final_out.assign(n, false);
    for (size_t j = 0; j < n; ++j) {
      double r;
      rescued[j] = false;
      if (has_text[j]) {
        // The text arrives, or its rescue recomputes it from the manifest's ids, whichever is first.
        const double Sr = std::max({rescue_at[j], prefix, compute_free});
        const bool rescue = Sr < text_arr[j] && Sr <= rescue_latest[j];
        const double a = rescue ? Sr : text_arr[j];
        const double S = std::max({a, prefix, compute_free});
        const double lower = std::max({known(a), known(prefix), known(compute_free)});
        const bool hedged = hedge_opt[j] != -2;
        if (hedged && (S < kInf ? S > deadline[j] : lower > deadline[j])) {  // the held KV serves it
          r = std::max(deadline[j], t_dec[j]);
          by_text[j] = false;
        } else {
          r = S + busy[j];
          by_text[j] = true;
          rescued[j] = rescue;
          compute_free = r;
        }
      } else {
        // A rescue recomputes the chunk at Sr, the first moment from rescue_at on when every
        // earlier chunk is ready and the compute worker free, if that is by rescue_latest and its
        // KV is not decoded by then (DecodePipeline::rescue).
        const double Sr = std::max({rescue_at[j], prefix, compute_free});
        const double lower = std::max({rescue_at[j], known(prefix), known(compute_free)});
        r = t_dec[j];
        if (rescue_at[j] < kInf && lower <= rescue_latest[j] && !(t_dec[j] <= lower)) {
          if (Sr < kInf) {
            if (Sr <= rescue_latest[j] && !(t_dec[j] <= Sr)) {
              r = Sr + true_busy(in, j, kText);
              rescued[j] = true;
              compute_free = r;
            }
          } else {
            r = kInf;  // not known yet whether the KV or the rescue serves it
          }
        }
        by_text[j] = rescued[j];
      }
      ready[j] = r;
      final_out[j] = r < kInf;
      prefix = std::max(prefix, r);
    }
  };
  auto refresh = [&] {
    std::vector<bool> fin;
    timeline(fin);
    for (size_t j = 0; j < n; ++j)
      if (fin[j] && !reported[j]) {
        reported[j] = true;
        pq.push({ready[j], seq++, kReady, j, rescued[j] && !has_text[j] ? -1.0 : by_text[j] ? busy[j] : kv_busy[j]});
      }
  };
  auto answer = [&](size_t j, double t, int kind) {  // 0 planned, 1 hedge, 2 upgrade
    const bool hedge = kind == 1;
    const int option = kind == 1 ? hedge_opt[j] : kind == 2 ? up_opt[j] : served[j];
    const uint64_t bytes = wire_bytes(spec, j, option);
    const auto sp = net.send(bytes, t);
    total_bytes += bytes;
    if (kind == 2) {
      up_arr[j] = sp.last_arrival_s;
      up_busy[j] = true_busy(in, j, option);
      up_seq[j] = seq;
      refresh();
      return;
    }
    if (hedge) {
      kv_arr[j] = sp.last_arrival_s;
      kv_busy[j] = true_busy(in, j, option);
      kv_seq[j] = seq;
      refresh();
      return;
    }
    answered[j] = true;
    span[j] = sp;
    const double first = net.arrival(span[j], 1);
    last[j] = span[j].last_arrival_s;
    const uint64_t first_bytes = net.arrived(span[j], first + opt.read_burst_s);
    busy[j] = true_busy(in, j, option);
    if (option == kText) {
      text_arr[j] = last[j];
    } else {
      kv_opt[j] = option;
      kv_arr[j] = last[j];
      kv_busy[j] = busy[j];
      kv_seq[j] = seq;
    }
    pq.push({first, seq++, kFirst, j, 0, first_bytes});
    pq.push({last[j], seq++, kLast, j});
    refresh();
  };
  auto process_until = [&](double T) {
    while (!pq.empty() && pq.top().t <= T) {
      const Event e = pq.top();
      pq.pop();
      switch (e.kind) {
        case kProfile: {
          profile_ready = net.send(in.profile_bytes, e.t).last_arrival_s;
          total_bytes += in.profile_bytes;
          refresh();
          break;
        }
        case kAnswer: answer(e.chunk, e.t, 0); break;
        case kHedge: answer(e.chunk, e.t, 1); break;
        case kUpgrade: answer(e.chunk, e.t, 2); break;
        case kCancel:
          if (!answered[e.chunk]) served[e.chunk] = e.option, replaced[e.chunk] = true;
          break;
        case kFirst:
          if (replaced[e.chunk]) ctl.on_served(e.chunk, served[e.chunk]);
          ctl.on_link_report(opt.sender_report);
          ctl.on_first_byte(e.chunk, e.t, e.bytes);
          break;
        case kLast: ctl.on_last_byte(e.chunk, e.t); break;
        case kReady: ctl.on_ready(e.chunk, e.t, e.value); break;
      }
    }
  };

  double predicted = -1;
  double now = hs.man_arr;
  while (true) {
    process_until(now);
    if (now >= ctl.watch_deadline()) {
      size_t j = 0;
      while (j < ctl.next_chunk() && ctl.facts()[j].last_byte_t >= 0) ++j;
      ctl.on_stalled(now, j < n && answered[j] ? net.arrived(span[j], now) : 0);
      for (const Replacement& r : ctl.replacements()) pq.push({now + d, seq++, kCancel, r.chunk, 0, 0, r.option});
    }
    while (ctl.next_chunk() < n) {
      const size_t k = ctl.next_chunk() - 1;  // the most recent request (none before chunk 0)
      uint64_t unreceived = 0;
      if (ctl.next_chunk() > 0) {
        const uint64_t b = wire_bytes(spec, k, served[k]);
        unreceived = answered[k] ? b - net.arrived(span[k], now) : b;
      }
      if (!ctl.request_due(unreceived, now)) break;
      const Decision dec = ctl.choose(now);
      if (predicted < 0 && pol.kind == PolicyKind::kAdaptive) predicted = dec.predicted_ttft_s;
      served[dec.chunk] = dec.option;
      has_text[dec.chunk] = dec.option == kText;
      rescue_at[dec.chunk] = dec.rescue_s;
      rescue_latest[dec.chunk] = dec.rescue_latest_s;
      refresh();  // a rescue time can settle a ready time
      pq.push({answer_at(now), seq++, kAnswer, dec.chunk});
    }
    if (ctl.next_chunk() >= n) {
      for (const Hedge& h : ctl.hedges(now)) {  // after every planned request
        if (h.upgrade) {
          up_opt[h.chunk] = h.option;
          up_deadline = h.deadline_s;
          pq.push({answer_at(now), seq++, kUpgrade, h.chunk});
          continue;
        }
        hedge_opt[h.chunk] = kv_opt[h.chunk] = h.option;
        deadline[h.chunk] = h.deadline_s;
        pq.push({answer_at(now), seq++, kHedge, h.chunk});
      }
      break;
    }
    // The next moment anything can change: an event, the last request's window crossing (the
    // receiver re-checks as bytes arrive), a wake-up the controller asked for.
    double next = pq.empty() ? kInf : pq.top().t;
    const size_t k = ctl.next_chunk() - 1;
    const uint64_t b = wire_bytes(spec, k, served[k]), w = ctl.decisions().back().window_bytes;
    if (answered[k] && w < b) {
      const double cross = net.arrival(span[k], b - w);
      if (cross > now) next = std::min(next, cross);
    }
    const double wake = ctl.next_wakeup(now);
    if (wake > now) next = std::min(next, wake);
    if (!(next < kInf)) throw std::logic_error("simulate: the fetch cannot progress (a controller bug)");
    now = next;
  }
  process_until(kInf);

  StreamResult r;
  r.context = in.context;
  r.policy = opt.policy.name();
  r.slo_ms = opt.slo_s * 1e3;
  // Upgrades: once every chunk is ready the receiver waits for them until their deadline at most.
  double finish = *std::max_element(ready.begin(), ready.end());
  double last_up = -kInf;
  for (size_t j = 0; j < n; ++j)
    if (up_opt[j] != -2) last_up = std::max(last_up, t_up[j]);
  if (last_up > -kInf && finish < up_deadline) finish = std::max(finish, std::min(up_deadline, last_up));
  r.ttft_ms = (finish + in.first_token_s) * 1e3;
  r.first_token_ms = in.first_token_s * 1e3;
  r.slo_met = r.ttft_ms <= r.slo_ms;
  r.bytes = total_bytes;
  r.last_byte_ms = *std::max_element(last.begin(), last.end()) * 1e3;
  r.trace = trace.name();
  r.predicted_ttft_ms = pol.kind == PolicyKind::kOracle ? oracle_pred * 1e3 : (predicted >= 0 ? predicted * 1e3 : -1);
  fill_chunks(r, ctl, busy, ready);
  std::vector<int> options, content;  // what the controller chose; what the cache holds
  for (const auto& dd : ctl.decisions()) {
    options.push_back(dd.option);
    const bool up = up_opt[dd.chunk] != -2 && t_up[dd.chunk] <= finish && !rescued[dd.chunk];
    content.push_back(up ? up_opt[dd.chunk] : by_text[dd.chunk] ? kText : kv_opt[dd.chunk]);
  }
  for (auto& c : r.chunks) {
    if (c.index < n && hedge_opt[c.index] != -2) c.served_by = by_text[c.index] ? "text" : "hedge";
    if (c.index < n && up_opt[c.index] != -2) c.served_by = t_up[c.index] <= finish ? "upgrade" : "base";
    if (c.index < n && rescued[c.index]) c.served_by = "rescue";
    if (c.served_by == "hedge" || c.served_by == "upgrade") c.served_level = spec.levels[size_t(content[c.index])].name;
  }
  ladder_quality(spec, content, r.greedy_agreement, r.ppl_delta_pct);
  r.quality_source = "ladder";
  r.plan = plan_to_string(spec, options);
  r.estimate_sources = ctl.estimator().sources();
  return r;
}

}  // namespace kvstream::streamer
