// Streaming benchmark over traces (see stream_bench.h).
#include "streamer/stream_bench.h"

#include <map>

namespace kvstream::streamer {

nlohmann::json run_stream_bench(const SimInputs& in, const BenchOptions& opt) {
  using nlohmann::json;
  json per_trace = json::array();
  struct Agg {
    int hits = 0;
    int n = 0;
    double agreement = 0, ppl = 0, ttft_over_slo = 0, bytes = 0;
  };
  std::map<std::string, Agg> agg;
  int oracle_hits = 0, adaptive_hits_where_oracle = 0;
  ProgressCounter traces_done(opt.progress, "traces", opt.traces.size());
  for (const auto& path : opt.traces) {
    const auto trace = netsim::Trace::load(path, opt.scale);
    SimOptions so;
    so.delay_s = opt.delay_s;
    so.turnaround_s = opt.turnaround_s;
    so.controller.prior_mbps = opt.prior_mbps;
    so.policy = parse_policy("q8");
    so.slo_s = 1e9;
    const StreamResult q8 = simulate_stream(in, trace, so);
    const double slo_s = q8.ttft_ms * 1e-3 * opt.slo_fraction_of_q8;
    json row;
    row["trace"] = trace.name();
    row["mean_mbps"] = trace.mean_bps() / 1e6;
    row["q8_ttft_ms"] = q8.ttft_ms;
    row["slo_ms"] = slo_s * 1e3;
    std::map<std::string, bool> met;
    for (const auto& p : opt.policies) {
      so.policy = parse_policy(p);
      so.slo_s = slo_s;
      const StreamResult r = simulate_stream(in, trace, so);
      row["policies"][p] = {{"ttft_ms", r.ttft_ms},
                            {"slo_met", r.slo_met},
                            {"greedy_agreement", r.greedy_agreement},
                            {"ppl_delta_pct", r.ppl_delta_pct},
                            {"bytes", r.bytes},
                            {"plan", r.plan}};
      auto& a = agg[p];
      a.n++;
      a.hits += r.slo_met;
      a.agreement += r.greedy_agreement;
      a.ppl += r.ppl_delta_pct;
      a.ttft_over_slo += r.ttft_ms / r.slo_ms;
      a.bytes += double(r.bytes);
      met[p] = r.slo_met;
    }
    if (met.count("oracle") && met["oracle"]) {
      ++oracle_hits;
      if (met.count("adaptive") && met["adaptive"]) ++adaptive_hits_where_oracle;
    }
    per_trace.push_back(row);
    traces_done.step();
  }
  json summary;
  for (const auto& [p, a] : agg) {
    summary["policies"][p] = {{"traces", a.n},
                              {"slo_hits", a.hits},
                              {"slo_hit_rate", a.n ? double(a.hits) / a.n : 0.0},
                              {"mean_greedy_agreement", a.n ? a.agreement / a.n : 0.0},
                              {"mean_ppl_delta_pct", a.n ? a.ppl / a.n : 0.0},
                              {"mean_ttft_over_slo", a.n ? a.ttft_over_slo / a.n : 0.0},
                              {"mean_bytes", a.n ? a.bytes / a.n : 0.0}};
  }
  if (agg.count("oracle") && agg.count("adaptive")) {
    const auto& o = agg["oracle"];
    const auto& ad = agg["adaptive"];
    const double hit_ratio = oracle_hits ? double(adaptive_hits_where_oracle) / oracle_hits : 1.0;
    const double q_ratio = o.agreement > 0 ? ad.agreement / o.agreement : 0.0;
    summary["goal"] = {{"oracle_slo_hits", oracle_hits},
                       {"adaptive_hits_where_oracle_hits", adaptive_hits_where_oracle},
                       {"adaptive_hit_ratio_vs_oracle", hit_ratio},
                       {"adaptive_quality_ratio_vs_oracle", q_ratio},
                       {"hit_ratio_goal_met", hit_ratio >= 0.95},
                       {"quality_ratio_goal_met", q_ratio >= 0.95}};
    if (agg.count("cachegen")) {
      const auto& c = agg["cachegen"];
      summary["goal"]["adaptive_beats_cachegen_on_hits"] = ad.hits > c.hits;
      summary["goal"]["adaptive_beats_cachegen_on_quality"] = ad.agreement > c.agreement;
      summary["goal"]["beats_cachegen_goal_met"] = ad.hits > c.hits || ad.agreement > c.agreement;
    }
  }
  return {{"per_trace", per_trace}, {"summary", summary}};
}

}  // namespace kvstream::streamer
