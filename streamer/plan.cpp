// Pipeline model and branch-and-bound plan search (see plan.h).
#include "streamer/plan.h"

#include <algorithm>
#include <cctype>
#include <limits>
#include <stdexcept>

namespace kvstream::streamer {

uint64_t StreamSpec::total_tokens() const {
  uint64_t t = 0;
  for (const auto& c : chunks) t += c.tokens;
  return t;
}

int StreamSpec::find_level(const std::string& name) const {
  for (size_t i = 0; i < levels.size(); ++i)
    if (levels[i].name == name) return int(i);
  if (!name.empty() && std::all_of(name.begin(), name.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    const long id = std::stol(name);
    for (size_t i = 0; i < levels.size(); ++i)
      if (levels[i].id == id) return int(i);
  }
  return -1;
}

uint64_t wire_bytes(const StreamSpec& s, size_t chunk, int option) {
  const auto& c = s.chunks.at(chunk);
  if (option == kText) return c.text_bytes + kChunkFrameOverhead;
  return c.level_bytes.at(size_t(option)) + kChunkFrameOverhead;
}

double option_agreement(const StreamSpec& s, int option) {
  return option == kText ? 1.0 : s.levels.at(size_t(option)).agreement;
}
double option_ppl_delta(const StreamSpec& s, int option) {
  return option == kText ? 0.0 : s.levels.at(size_t(option)).ppl_delta_pct;
}

double CostModel::decode_s(const StreamSpec& s, size_t chunk, int option) const {
  if (option == kText) return 0;
  if (chunk < decode_s_exact.size() && size_t(option) < decode_s_exact[chunk].size())
    return decode_s_exact[chunk][size_t(option)];
  double per = default_decode_s_per_token;
  if (size_t(option) < decode_s_per_token.size() && decode_s_per_token[size_t(option)] > 0)
    per = decode_s_per_token[size_t(option)];
  return per * s.chunks[chunk].tokens;
}
double CostModel::recompute_s(const StreamSpec& s, size_t chunk) const {
  const double per = prefill_rate > 0 ? 1.0 / prefill_rate : recompute_s_per_token;
  return per * s.chunks[chunk].tokens;
}

TransferModel constant_rate_model(double bytes_per_s, double rtt_s) {
  if (!(bytes_per_s > 0)) throw std::invalid_argument("throughput estimate must be positive");
  TransferModel tm;
  tm.rtt_s = rtt_s;
  tm.finish = [bytes_per_s](double start, uint64_t bytes) { return start + double(bytes) / bytes_per_s; };
  return tm;
}

TransferModel outage_rate_model(double bytes_per_s, double rtt_s, double from, double to) {
  if (!(bytes_per_s > 0)) throw std::invalid_argument("throughput estimate must be positive");
  TransferModel tm;
  tm.rtt_s = rtt_s;
  tm.finish = [bytes_per_s, from, to](double start, uint64_t bytes) {
    const double need = double(bytes) / bytes_per_s;  // seconds of delivery
    if (start >= to || start + need <= from) return start + need;
    const double before = std::max(0.0, from - start);  // delivered before the outage
    return std::max(start, to) + (need - before);
  };
  return tm;
}

PipelineState advance(const PipelineState& st, const StreamSpec& s, const CostModel& c,
                      const TransferModel& tm, size_t chunk, int option, double earliest_start,
                      const ChunkFacts* f, double* ready_out) {
  PipelineState ns = st;
  const uint64_t bytes = wire_bytes(s, chunk, option);
  double end;
  ns.link_bytes = st.link_bytes + bytes;
  if (f && f->last_byte_t >= 0) {
    end = f->last_byte_t;
  } else if (tm.finish_cumulative) {
    end = std::max(tm.finish_cumulative(ns.link_bytes), st.now);
  } else {
    double start = std::max(st.link_free, earliest_start);
    if (f && f->first_byte_t >= 0) start = std::max(start, f->first_byte_t);
    end = std::max(tm.finish(start, bytes), st.now);
  }
  ns.link_free = std::max(st.link_free, end);
  double ready;
  if (f && f->ready_t >= 0) {
    ready = f->ready_t;
    if (option == kText) ns.compute_free = std::max(ns.compute_free, ready);
    else ns.decode_free = std::max(ns.decode_free, ready);
  } else if (option == kText) {
    // Work that may already have started keeps its start; its end is no earlier than now.
    const double begin = std::max({end, st.prefix_ready, st.compute_free});
    ready = std::max(begin + c.recompute_s(s, chunk), st.now);
    ns.compute_free = ready;
  } else {
    const double begin = std::max({end, st.decode_free});
    ready = std::max(begin + c.decode_s(s, chunk, option), st.now);
    ns.decode_free = ready;
  }
  ns.prefix_ready = std::max(st.prefix_ready, ready);
  if (ready_out) *ready_out = ready;
  return ns;
}

namespace {

struct Search {
  Search(const StreamSpec& s_, const CostModel& c_, const TransferModel& tm_)
      : s(s_), c(c_), tm(tm_) {}
  const StreamSpec& s;
  const CostModel& c;
  const TransferModel& tm;
  std::vector<int> by_quality;  // allowed options, best agreement first
  std::vector<int> by_bytes;    // allowed options, fewest bytes first (per chunk order differs little)
  std::vector<int> first_quality, first_bytes;  // the same for chunk `first` (first_allowed)
  const std::vector<int>& quality_order(size_t j) const { return j == first && !first_quality.empty() ? first_quality : by_quality; }
  const std::vector<int>& bytes_order(size_t j) const { return j == first && !first_bytes.empty() ? first_bytes : by_bytes; }
  size_t first = 0;
  double first_start = 0;
  double deadline = 0;
  size_t budget = 0;
  size_t nodes = 0;
  bool exhausted = false;
  std::vector<double> suffix_max_q;      // best possible quality of chunks [j, n)
  std::vector<uint64_t> suffix_min_bytes;  // fewest bytes of chunks [j, n)
  std::vector<double> suffix_min_decode;   // sum over chunks [j, n) of their fastest KV decode (inf: no KV option)
  std::vector<double> suffix_min_recompute;  // fastest recompute of one chunk in [j, n) (inf: no text)
  std::vector<int> cur;

  double quality(size_t j, int o) const { return double(s.chunks[j].tokens) * option_agreement(s, o); }
  // No plan of chunks [j, n) from st ends sooner (advance() only ever waits): the last chunk is
  // processed after the fewest bytes have crossed the link, and either every chunk left is KV,
  // each decoded after the one before it on the decoder, or one is recomputed after the compute
  // resource is free.
  double lower_bound_ttft(const PipelineState& st, size_t j) const {
    double lb = st.prefix_ready;
    if (j < s.chunks.size()) {
      const double link = tm.finish_cumulative ? tm.finish_cumulative(st.link_bytes + suffix_min_bytes[j])
                                               : tm.finish(st.link_free, suffix_min_bytes[j]);
      const double work = std::min(st.decode_free + suffix_min_decode[j], st.compute_free + suffix_min_recompute[j]);
      const size_t last = s.chunks.size() - 1;  // its fastest decode or recompute
      lb = std::max({lb, link + std::min(suffix_min_decode[last], suffix_min_recompute[last]), work});
    }
    return lb + c.first_token_s;
  }
  double start_of(size_t j) const { return j == first ? first_start : 0.0; }

  // Phase A: smallest TTFT.
  double best_ttft = std::numeric_limits<double>::infinity();
  std::vector<int> best_ttft_plan;
  // States dfs_fast entered at each depth (at most kSeenPerDepth). advance() never makes a later
  // state of a no-later one, so a state no earlier in every component than one whose subtree was
  // already searched cannot lead to a strictly faster plan: pruning it is exact. (Without it a
  // fast link, where the options' TTFTs differ by less than the bound's slack, makes the search
  // visit every plan.)
  static constexpr size_t kSeenPerDepth = 64;
  std::vector<std::vector<PipelineState>> seen;
  bool dominated(size_t j, const PipelineState& b) {
    auto& v = seen[j];
    for (const PipelineState& a : v)
      if (a.link_free <= b.link_free && a.decode_free <= b.decode_free && a.compute_free <= b.compute_free &&
          a.prefix_ready <= b.prefix_ready && a.now <= b.now && a.link_bytes <= b.link_bytes)
        return true;
    if (v.size() < kSeenPerDepth) v.push_back(b);
    return false;
  }
  void dfs_fast(size_t j, const PipelineState& st) {
    if (exhausted) return;
    if (++nodes > budget) { exhausted = true; return; }
    if (j < s.chunks.size() && dominated(j, st)) return;
    if (j == s.chunks.size()) {
      const double t = st.prefix_ready + c.first_token_s;
      if (t < best_ttft) { best_ttft = t; best_ttft_plan = cur; }
      return;
    }
    for (int o : bytes_order(j)) {
      PipelineState ns = advance(st, s, c, tm, j, o, start_of(j), nullptr);
      if (lower_bound_ttft(ns, j + 1) >= best_ttft - 1e-12) continue;
      cur.push_back(o);
      dfs_fast(j + 1, ns);
      cur.pop_back();
    }
  }

  // Phase B: best quality within the deadline.
  double best_q = -1;
  double best_q_ttft = 0;
  std::vector<int> best_q_plan;
  void dfs_quality(size_t j, const PipelineState& st, double q) {
    if (exhausted) return;
    if (++nodes > budget) { exhausted = true; return; }
    if (j == s.chunks.size()) {
      const double t = st.prefix_ready + c.first_token_s;
      // Ties (same quality, same TTFT): prefer fewer bytes in the earliest chunks, i.e. degrade
      // now rather than later; later chunks get re-planned with more measurements.
      bool better = q > best_q + 1e-9;
      if (!better && q > best_q - 1e-9) {
        if (t < best_q_ttft - 1e-9) better = true;
        else if (t < best_q_ttft + 1e-9) better = earlier_is_smaller(cur, best_q_plan);
      }
      if (better) {
        best_q = q;
        best_q_ttft = t;
        best_q_plan = cur;
      }
      return;
    }
    if (q + suffix_max_q[j] < best_q - 1e-9) return;
    for (int o : quality_order(j)) {
      const double nq = q + quality(j, o);
      if (nq + (j + 1 < s.chunks.size() ? suffix_max_q[j + 1] : 0.0) < best_q - 1e-9) continue;
      PipelineState ns = advance(st, s, c, tm, j, o, start_of(j), nullptr);
      if (lower_bound_ttft(ns, j + 1) > deadline) continue;
      cur.push_back(o);
      dfs_quality(j + 1, ns, nq);
      cur.pop_back();
    }
  }

  bool earlier_is_smaller(const std::vector<int>& a, const std::vector<int>& b) const {
    for (size_t k = 0; k < a.size() && k < b.size(); ++k) {
      const uint64_t x = wire_bytes(s, first + k, a[k]), y = wire_bytes(s, first + k, b[k]);
      if (x != y) return x < y;
    }
    return false;
  }
  double eval(const PipelineState& st0, const std::vector<int>& plan) const {
    PipelineState st = st0;
    for (size_t k = 0; k < plan.size(); ++k) st = advance(st, s, c, tm, first + k, plan[k], start_of(first + k), nullptr);
    return st.prefix_ready + c.first_token_s;
  }
  double plan_quality(const std::vector<int>& plan) const {
    double q = 0;
    for (size_t k = 0; k < plan.size(); ++k) q += quality(first + k, plan[k]);
    return q;
  }
};

}  // namespace

PlanResult PlanSearch::run(const PipelineState& st, size_t first, double first_start, double deadline) const {
  if (!spec || !cost || !transfer) throw std::invalid_argument("PlanSearch needs spec, cost and transfer");
  const StreamSpec& s = *spec;
  const size_t n = s.chunks.size();
  PlanResult r;
  if (first >= n) {
    r.predicted_ttft = st.prefix_ready + cost->first_token_s;
    r.feasible = r.predicted_ttft <= deadline;
    return r;
  }
  if (allowed.empty()) throw std::invalid_argument("PlanSearch has no allowed options");
  Search x(s, *cost, *transfer);
  x.by_quality = x.by_bytes = allowed;
  x.first = first;
  x.first_start = first_start;
  x.deadline = deadline;
  x.budget = node_budget;
  std::stable_sort(x.by_quality.begin(), x.by_quality.end(),
                   [&](int a, int b) { return option_agreement(s, a) > option_agreement(s, b); });
  std::stable_sort(x.by_bytes.begin(), x.by_bytes.end(),
                   [&](int a, int b) { return wire_bytes(s, first, a) < wire_bytes(s, first, b); });
  for (int o : x.by_quality)
    if (std::find(first_allowed.begin(), first_allowed.end(), o) != first_allowed.end()) x.first_quality.push_back(o);
  for (int o : x.by_bytes)
    if (std::find(first_allowed.begin(), first_allowed.end(), o) != first_allowed.end()) x.first_bytes.push_back(o);
  if (!first_allowed.empty() && x.first_bytes.empty()) throw std::invalid_argument("PlanSearch: first_allowed is not a subset of allowed");
  const double inf = std::numeric_limits<double>::infinity();
  x.suffix_max_q.assign(n + 1, 0.0);
  x.suffix_min_bytes.assign(n + 1, 0);
  x.suffix_min_decode.assign(n + 1, 0.0);
  x.suffix_min_recompute.assign(n + 1, inf);
  const bool text_allowed = std::find(allowed.begin(), allowed.end(), kText) != allowed.end();
  for (size_t j = n; j-- > first;) {
    double mq = 0, md = inf;
    uint64_t mb = std::numeric_limits<uint64_t>::max();
    for (int o : allowed) {
      mq = std::max(mq, x.quality(j, o));
      mb = std::min(mb, wire_bytes(s, j, o));
      if (o != kText) md = std::min(md, cost->decode_s(s, j, o));
    }
    x.suffix_max_q[j] = x.suffix_max_q[j + 1] + mq;
    x.suffix_min_bytes[j] = x.suffix_min_bytes[j + 1] + mb;
    x.suffix_min_decode[j] = x.suffix_min_decode[j + 1] + md;
    x.suffix_min_recompute[j] = std::min(x.suffix_min_recompute[j + 1], text_allowed ? cost->recompute_s(s, j) : inf);
  }

  // Greedy fastest plan as the incumbent, then exact search within the budget.
  {
    PipelineState g = st;
    std::vector<int> plan;
    for (size_t j = first; j < n; ++j) {
      int best_o = x.bytes_order(j).front();
      double best_t = std::numeric_limits<double>::infinity();
      PipelineState best_s{};
      for (int o : x.bytes_order(j)) {
        PipelineState ns = advance(g, s, *cost, *transfer, j, o, x.start_of(j), nullptr);
        const double t = x.lower_bound_ttft(ns, j + 1);
        if (t < best_t - 1e-12) { best_t = t; best_o = o; best_s = ns; }
      }
      plan.push_back(best_o);
      g = best_s;
    }
    x.best_ttft_plan = plan;
    x.best_ttft = g.prefix_ready + cost->first_token_s;
  }
  x.seen.assign(n, {});
  x.dfs_fast(first, st);
  const size_t nodes_a = x.nodes;
  if (x.best_ttft > deadline) {
    r.options = x.best_ttft_plan;
    r.predicted_ttft = x.best_ttft;
    r.quality = x.plan_quality(r.options);
    r.feasible = false;
    r.nodes = nodes_a;
    return r;
  }

  // Quality-greedy incumbent: per chunk the best option that still admits the fastest completion.
  {
    std::vector<int> plan = x.best_ttft_plan;
    for (size_t k = 0; k < plan.size(); ++k) {
      for (int o : x.quality_order(first + k)) {
        std::vector<int> trial = plan;
        trial[k] = o;
        if (x.eval(st, trial) <= deadline) { plan = trial; break; }
      }
    }
    x.best_q_plan = plan;
    x.best_q = x.plan_quality(plan);
    x.best_q_ttft = x.eval(st, plan);
  }
  x.exhausted = false;
  x.nodes = 0;
  x.dfs_quality(first, st, 0.0);
  r.options = x.best_q_plan;
  r.predicted_ttft = x.best_q_ttft;
  r.quality = x.best_q;
  r.feasible = true;
  r.nodes = nodes_a + x.nodes;
  return r;
}

PlanTimeline evaluate_plan(const StreamSpec& s, const CostModel& c, const TransferModel& tm,
                           const std::vector<int>& options, double first_start) {
  if (options.size() != s.chunks.size()) throw std::invalid_argument("plan length != chunk count");
  PlanTimeline tl;
  PipelineState st;
  for (size_t j = 0; j < options.size(); ++j) {
    const double start = std::max(st.link_free, j == 0 ? first_start : 0.0);
    double ready = 0;
    st = advance(st, s, c, tm, j, options[j], j == 0 ? first_start : 0.0, nullptr, &ready);
    tl.start.push_back(start);
    tl.end.push_back(st.link_free);
    tl.ready.push_back(ready);
  }
  tl.ttft = st.prefix_ready + c.first_token_s;
  return tl;
}

}  // namespace kvstream::streamer
