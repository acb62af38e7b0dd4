// The streaming benchmark matrix (see stream_bench.h).
#include "bench/stream_bench.h"

#include <atomic>
#include <cmath>
#include <map>
#include <sstream>
#include <thread>

namespace kvstream::streamer {

using nlohmann::json;

namespace {

struct Outcome {
  double ttft_ms = 0;
  double quality = 0;
  std::string plan;
};

struct Case {
  std::string family, trace;
  double delay_ms = 0, fraction = 0, slo_ms = 0, q8_ms = 0;
  std::map<std::string, Outcome> fixed;     // SLO-independent
  std::map<std::string, Outcome> adaptive;  // adaptive, cachegen, oracle, variants
  bool met(const Outcome& o) const { return o.ttft_ms <= slo_ms; }
  bool any_fixed_met() const {
    for (const auto& [n, o] : fixed)
      if (met(o)) return true;
    return false;
  }
};

Outcome outcome(const StreamResult& r) { return {r.ttft_ms, r.greedy_agreement, r.plan}; }

std::string level_policy(const LevelSpec& l) { return l.name == "q8" ? "q8" : "fixed:" + l.name; }

// All the work of one (trace, delay): the fixed policies once, then per fraction the SLO-driven ones.
std::vector<Case> run_unit(const SimInputs& in, const BenchOptions& opt, const std::string& family,
                           const netsim::Trace& trace, double delay_s) {
  SimOptions so;
  so.delay_s = delay_s;
  so.turnaround_s = opt.turnaround_s;
  so.controller.prior_mbps = opt.prior_mbps;
  so.slo_s = 1e9;
  std::map<std::string, Outcome> fixed;
  std::vector<std::string> fixed_names = {"text"};
  for (const auto& l : in.spec.levels) fixed_names.push_back(level_policy(l));
  for (const auto& p : fixed_names) {
    so.policy = parse_policy(p);
    fixed[p] = outcome(simulate_stream(in, trace, so));
  }
  if (!fixed.count("q8")) throw std::runtime_error("bench stream: the context has no q8 level (encode with baselines)");
  std::vector<Case> out;
  for (double f : opt.slo_fractions) {
    Case c;
    c.family = family;
    c.trace = trace.name();
    c.delay_ms = delay_s * 1e3;
    c.fraction = f;
    c.q8_ms = fixed["q8"].ttft_ms;
    c.slo_ms = f * c.q8_ms;
    c.fixed = fixed;
    so.slo_s = c.slo_ms * 1e-3;
    for (const char* p : {"adaptive", "cachegen", "oracle"}) {
      so.policy = parse_policy(p);
      c.adaptive[p] = outcome(simulate_stream(in, trace, so));
    }
    for (const auto& v : opt.variants) {
      SimOptions sv = so;
      sv.policy = parse_policy("adaptive");
      sv.controller.estimator = v.estimator;
      c.adaptive["adaptive/" + v.name] = outcome(simulate_stream(in, trace, sv));
    }
    out.push_back(std::move(c));
  }
  return out;
}

// Goal counts over a set of cases for one adaptive policy name.
struct Tally {
  int cases = 0, oracle_met = 0, adaptive_where_oracle = 0, fixed_met = 0, adaptive_where_fixed = 0;
  int both_met = 0;
  double q_adaptive = 0, q_oracle = 0;
  std::map<std::string, int> hits;
  std::vector<std::string> missed_vs_oracle, missed_vs_fixed;
  void add(const Case& c, const std::string& name) {
    ++cases;
    for (const auto& [p, o] : c.fixed) hits[p] += c.met(o);
    for (const auto& [p, o] : c.adaptive) hits[p] += c.met(o);
    const bool a = c.met(c.adaptive.at(name)), o = c.met(c.adaptive.at("oracle")), f = c.any_fixed_met();
    hits["any-fixed"] += f;
    oracle_met += o;
    adaptive_where_oracle += o && a;
    fixed_met += f;
    adaptive_where_fixed += f && a;
    if (o && a) {
      ++both_met;
      q_adaptive += c.adaptive.at(name).quality;
      q_oracle += c.adaptive.at("oracle").quality;
    }
    std::ostringstream id;
    id << c.trace << " @" << c.delay_ms << "ms x" << c.fraction;
    if (o && !a) missed_vs_oracle.push_back(id.str());
    if (f && !a) missed_vs_fixed.push_back(id.str());
  }
  double hit_ratio() const { return oracle_met ? double(adaptive_where_oracle) / oracle_met : 1.0; }
  double fixed_ratio() const { return fixed_met ? double(adaptive_where_fixed) / fixed_met : 1.0; }
  double quality_ratio() const { return q_oracle > 0 ? q_adaptive / q_oracle : 1.0; }
  json to_json(bool lists) const {
    json j{{"cases", cases},
           {"oracle_met", oracle_met},
           {"adaptive_met_where_oracle_met", adaptive_where_oracle},
           {"hit_ratio_vs_oracle", hit_ratio()},
           {"any_fixed_met", fixed_met},
           {"adaptive_met_where_fixed_met", adaptive_where_fixed},
           {"hit_ratio_vs_fixed", fixed_ratio()},
           {"both_met", both_met},
           {"mean_quality_adaptive", both_met ? q_adaptive / both_met : 0.0},
           {"mean_quality_oracle", both_met ? q_oracle / both_met : 0.0},
           {"quality_ratio_vs_oracle", quality_ratio()},
           {"hits", hits}};
    if (lists) {
      j["missed_vs_oracle"] = missed_vs_oracle;
      j["missed_vs_fixed"] = missed_vs_fixed;
    }
    return j;
  }
};

json case_json(const Case& c) {
  json p = json::object();
  auto put = [&](const std::string& n, const Outcome& o) {
    p[n] = {{"ttft_ms", o.ttft_ms}, {"slo_met", c.met(o)}, {"greedy_agreement", o.quality}, {"plan", o.plan}};
  };
  for (const auto& [n, o] : c.fixed) put(n, o);
  for (const auto& [n, o] : c.adaptive) put(n, o);
  return {{"family", c.family}, {"trace", c.trace},   {"delay_ms", c.delay_ms},
          {"slo_fraction", c.fraction}, {"q8_ttft_ms", c.q8_ms}, {"slo_ms", c.slo_ms},
          {"any_fixed_met", c.any_fixed_met()}, {"policies", p}};
}

}  // namespace

std::vector<BenchVariant> ablation_variants() {
  std::vector<BenchVariant> v(3);
  v[0].name = "no-handshake";
  v[0].estimator.use_handshake = false;
  v[1].name = "no-report";
  v[1].estimator.use_report = false;
  v[2].name = "prior-only";
  v[2].estimator.use_handshake = v[2].estimator.use_report = v[2].estimator.use_memory = false;
  return v;
}

json run_stream_bench(const SimInputs& in, const BenchOptions& opt) {
  struct Unit {
    size_t family;
    netsim::Trace trace;
    double delay_s;
  };
  std::vector<Unit> units;
  for (size_t f = 0; f < opt.families.size(); ++f)
    for (const auto& path : opt.families[f].traces) {
      const auto t = netsim::Trace::load(path, opt.scale);
      for (double d : opt.delays_s) units.push_back({f, t, d});
    }
  std::vector<std::vector<Case>> results(units.size());
  std::vector<std::string> errors(units.size());
  std::atomic<size_t> next{0};
  ProgressCounter units_done(opt.progress, "units", units.size());
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < units.size();) {
      try {
        results[i] = run_unit(in, opt, opt.families[units[i].family].name, units[i].trace, units[i].delay_s);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
      units_done.step();
    }
  };
  std::vector<std::thread> pool;
  for (int j = 1; j < std::max(1, opt.jobs); ++j) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  for (size_t i = 0; i < units.size(); ++i)
    if (!errors[i].empty()) throw std::runtime_error("bench stream: " + units[i].trace.name() + ": " + errors[i]);

  // Cells and totals.
  std::map<std::tuple<size_t, double, double>, Tally> cells;
  Tally total;
  std::map<std::string, Tally> variant_totals;
  json cases = json::array();
  for (size_t i = 0; i < units.size(); ++i)
    for (const Case& c : results[i]) {
      cells[{units[i].family, c.delay_ms, c.fraction}].add(c, "adaptive");
      total.add(c, "adaptive");
      for (const auto& v : opt.variants) variant_totals[v.name].add(c, "adaptive/" + v.name);
      if (opt.cases) cases.push_back(case_json(c));
    }
  json jcells = json::array();
  double min_cell = 1.0;
  for (const auto& [key, t] : cells) {
    json j = t.to_json(true);
    j["family"] = opt.families[std::get<0>(key)].name;
    j["delay_ms"] = std::get<1>(key);
    j["slo_fraction"] = std::get<2>(key);
    j["cell_goal_met"] = t.hit_ratio() >= opt.cell_hit_goal;
    if (t.oracle_met > 0) min_cell = std::min(min_cell, t.hit_ratio());
    jcells.push_back(j);
  }
  json summary = total.to_json(true);
  summary["min_cell_hit_ratio_vs_oracle"] = min_cell;
  summary["goals"] = {{"hit_ratio_vs_oracle", {{"goal", opt.hit_goal}, {"met", total.hit_ratio() >= opt.hit_goal}}},
                      {"every_cell_hit_ratio", {{"goal", opt.cell_hit_goal}, {"met", min_cell >= opt.cell_hit_goal}}},
                      {"where_any_fixed_meets", {{"goal", 1.0}, {"met", total.fixed_ratio() >= 1.0}}},
                      {"quality_ratio_vs_oracle", {{"goal", opt.quality_goal}, {"met", total.quality_ratio() >= opt.quality_goal}}}};
  json ablation = json::object();
  for (const auto& [name, t] : variant_totals) ablation[name] = t.to_json(false);
  if (!opt.variants.empty()) ablation["all-sources"] = total.to_json(false);
  json fams = json::array();
  for (const auto& f : opt.families) fams.push_back({{"name", f.name}, {"traces", f.traces.size()}});
  std::vector<double> delays_ms;
  for (double d : opt.delays_s) delays_ms.push_back(d * 1e3);
  json out{{"config", {{"families", fams}, {"delays_ms", delays_ms}, {"slo_fractions", opt.slo_fractions},
                       {"turnaround_ms", opt.turnaround_s * 1e3}, {"scale", opt.scale},
                       {"prior_mbps", opt.prior_mbps}}},
           {"cells", jcells},
           {"summary", summary}};
  if (!opt.variants.empty()) out["ablation"] = ablation;
  if (opt.cases) out["cases"] = cases;
  return out;
}

}  // namespace kvstream::streamer
