// Adaptation controller (see controller.h).
#include "streamer/controller.h"

#include "streamer/robust_plan.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace kvstream::streamer {

std::string Policy::name() const {
  switch (kind) {
    case PolicyKind::kAdaptive: return "adaptive";
    case PolicyKind::kFixed: return "fixed:" + level;
    case PolicyKind::kQ8: return "q8";
    case PolicyKind::kText: return "text";
    case PolicyKind::kCacheGen: return "cachegen";
    case PolicyKind::kPlan: return "plan:" + plan_text;
    case PolicyKind::kOracle: return "oracle";
  }
  return "?";
}

Policy parse_policy(const std::string& s) {
  Policy p;
  if (s == "adaptive") p.kind = PolicyKind::kAdaptive;
  else if (s == "q8") p.kind = PolicyKind::kQ8;
  else if (s == "text") p.kind = PolicyKind::kText;
  else if (s == "cachegen") p.kind = PolicyKind::kCacheGen;
  else if (s == "oracle") p.kind = PolicyKind::kOracle;
  else if (s.rfind("fixed:", 0) == 0 && s.size() > 6) {
    p.kind = PolicyKind::kFixed;
    p.level = s.substr(6);
  } else if (s.rfind("plan:", 0) == 0 && s.size() > 5) {
    p.kind = PolicyKind::kPlan;
    p.plan_text = s.substr(5);
  } else {
    throw std::invalid_argument("unknown policy '" + s +
                                "' (expected adaptive, fixed:LEVEL, q8, text, cachegen, oracle or plan:L0,L1,...)");
  }
  return p;
}

static int resolve_option(const StreamSpec& spec, const std::string& tok) {
  if (tok == "text" || tok == "T") return kText;
  const int i = spec.find_level(tok);
  if (i < 0 || spec.levels[size_t(i)].name == "text") {
    if (i >= 0) return kText;
    std::string names;
    for (const auto& l : spec.levels) names += (names.empty() ? "" : ", ") + l.name;
    throw std::invalid_argument("no level '" + tok + "' in this context (levels: " + names + ", text)");
  }
  return i;
}

void resolve_policy(Policy& p, const StreamSpec& spec) {
  if (p.kind == PolicyKind::kFixed) {
    resolve_option(spec, p.level);  // validates
  } else if (p.kind == PolicyKind::kQ8) {
    if (spec.find_level("q8") < 0)
      throw std::invalid_argument("policy q8 needs a 'q8' level in the container (encode with baselines)");
  } else if (p.kind == PolicyKind::kPlan) {
    p.plan.clear();
    std::stringstream ss(p.plan_text);
    std::string tok;
    while (std::getline(ss, tok, ',')) p.plan.push_back(resolve_option(spec, tok));
    if (p.plan.size() != spec.chunks.size())
      throw std::invalid_argument("plan has " + std::to_string(p.plan.size()) + " entries, context has " +
                                  std::to_string(spec.chunks.size()) + " chunks");
  }
}

std::string plan_to_string(const StreamSpec& spec, const std::vector<int>& options) {
  std::string s;
  for (size_t i = 0; i < options.size(); ++i) {
    if (i) s += ",";
    s += options[i] == kText ? std::string("text") : spec.levels.at(size_t(options[i])).name;
  }
  return s;
}

namespace {
constexpr double kSampleResolutionS = 1e-3;  // a chunk that arrives in one burst: bytes / 1 ms
constexpr double kInf = std::numeric_limits<double>::infinity();
}  // namespace

Controller::Controller(StreamSpec spec, Policy policy, ControllerConfig cfg)
    : spec_(std::move(spec)), policy_(std::move(policy)), cfg_(std::move(cfg)), est_([&] {
        LinkEstimator::Config e = cfg_.estimator;
        e.prior_mbps = cfg_.prior_mbps;
        return e;
      }()) {
  if (spec_.chunks.empty()) throw std::invalid_argument("controller: context has no chunks");
  for (const auto& c : spec_.chunks)
    if (c.level_bytes.size() != spec_.levels.size())
      throw std::invalid_argument("controller: chunk level sizes do not match the ladder");
  if (!(cfg_.slo_s > 0)) throw std::invalid_argument("controller: SLO must be positive");
  if (!(cfg_.prior_mbps > 0)) throw std::invalid_argument("controller: prior throughput must be positive");
  resolve_policy(policy_, spec_);
  if (!cfg_.allow_text && policy_.kind == PolicyKind::kText)
    throw std::invalid_argument("policy text needs a model to recompute with");
  if ((policy_.kind == PolicyKind::kPlan || policy_.kind == PolicyKind::kOracle) &&
      policy_.plan.size() != spec_.chunks.size())
    throw std::invalid_argument("controller: plan/oracle policy needs a full plan");
  facts_.resize(spec_.chunks.size());
  offered_.assign(spec_.chunks.size(), false);
  idle_request_.assign(spec_.chunks.size(), false);
  decode_sum_.assign(spec_.levels.size(), 0.0);
  decode_tokens_.assign(spec_.levels.size(), 0.0);
  if (cfg_.cost.decode_s_per_token.size() < spec_.levels.size())
    cfg_.cost.decode_s_per_token.resize(spec_.levels.size(), 0.0);
  est_.set_memory(cfg_.memory);
  options_ = pareto_options(spec_, cfg_.cost, cfg_.allow_text);
}

// ---- events ----

void Controller::on_handshake(uint64_t total_bytes, uint64_t first_read_bytes, double first_t, double last_t) {
  est_.on_handshake(total_bytes, first_read_bytes, first_t, last_t, cfg_.rtt_s);
}

void Controller::on_link_report(const LinkReport& r) { est_.on_report(r, cfg_.rtt_s); }

void Controller::on_first_byte(size_t chunk, double t, uint64_t bytes_so_far) {
  if (chunk >= facts_.size()) return;
  auto& f = facts_[chunk];
  if (f.first_byte_t >= 0) return;
  f.first_byte_t = t;
  f.first_bytes = bytes_so_far;
  // A chunk requested on an idle link measures the round trip (min-filtered): the handshake's
  // may include a wait for the link's first delivery.
  if (idle_request_[chunk] && t - f.request_t > 0) cfg_.rtt_s = std::min(cfg_.rtt_s, t - f.request_t);
}

void Controller::on_last_byte(size_t chunk, double t) {
  if (chunk >= facts_.size()) return;
  auto& f = facts_[chunk];
  if (f.first_byte_t < 0) f.first_byte_t = t;
  f.last_byte_t = t;
  const uint64_t bytes = wire_bytes(spec_, chunk, f.option);
  // Bytes arrive in bursts (packets, delivery opportunities, socket reads). When the first
  // observation of the chunk said how much had arrived, the sample is the bytes that arrived after
  // it over the time after it: the first burst's bytes came in no measured time, and counting them
  // would overstate the rate by up to one burst. Otherwise (unknown, or one burst) the service
  // start is taken as back to back after the previous chunk, or one RTT after the request when the
  // link was idle, never later than the first byte seen. A chunk that arrived within the time
  // resolution moved its bytes in under it: bytes / resolution is a lower bound of the rate.
  double dur = 0;
  uint64_t counted = bytes;
  if (f.first_bytes > 0 && f.first_bytes < bytes && t > f.first_byte_t) {
    counted = bytes - f.first_bytes;
    dur = t - f.first_byte_t;
  } else {
    double start = std::max(prev_last_byte_, f.request_t + cfg_.rtt_s);
    start = std::min(start, f.first_byte_t);
    dur = t - start;
  }
  prev_last_byte_ = t;
  dur = std::max(dur, kSampleResolutionS);
  f.throughput_bps = double(counted) / dur;
  wave_ = 0;
  stalled_ = false;
  est_.clear_cap();
  if (bytes >= cfg_.min_sample_bytes) {
    est_.on_chunk_sample(double(counted), dur);
    all_samples_.push_back(f.throughput_bps * 8e-6);
    last_sample_bps_ = f.throughput_bps;
  }
}

void Controller::on_ready(size_t chunk, double t, double busy_s) {
  if (chunk >= facts_.size()) return;
  auto& f = facts_[chunk];
  f.ready_t = t;
  const double tokens = spec_.chunks[chunk].tokens;
  if (busy_s < 0 || tokens <= 0) return;
  if (f.option == kText) {
    recompute_sum_ += busy_s;
    recompute_tokens_ += tokens;
    if (cfg_.cost.prefill_rate <= 0) cfg_.cost.recompute_s_per_token = recompute_sum_ / recompute_tokens_;
  } else {
    const size_t l = size_t(f.option);
    decode_sum_[l] += busy_s;
    decode_tokens_[l] += tokens;
    cfg_.cost.decode_s_per_token[l] = decode_sum_[l] / decode_tokens_[l];
  }
}

namespace {
// The oldest requested chunk that has not fully arrived (facts.size() if none).
size_t in_flight(const std::vector<ChunkFacts>& facts, size_t next) {
  for (size_t j = 0; j < next; ++j)
    if (facts[j].last_byte_t < 0) return j;
  return facts.size();
}
}  // namespace

double Controller::watch_deadline() const {
  if (!adaptive_paced() || stalled_) return kInf;
  const size_t j = in_flight(facts_, next_);
  if (j >= next_) return kInf;
  const auto& f = facts_[j];
  const double start = std::max(f.request_t + cfg_.rtt_s, prev_last_byte_);
  return start + double(wire_bytes(spec_, j, f.option)) / est_.quantile(cfg_.slow_quantile);
}

void Controller::on_stalled(double t, uint64_t bytes_received) {
  const size_t j = in_flight(facts_, next_);
  if (j >= next_ || stalled_) return;
  stalled_ = true;
  const auto& f = facts_[j];
  const double start = std::max(f.request_t + cfg_.rtt_s, prev_last_byte_);
  est_.cap_current(double(bytes_received), t - start);
}

std::vector<Replacement> Controller::replacements() {
  std::vector<Replacement> out;
  if (!stalled_) return out;
  // The chunk in flight has started (its bytes are on the link); the ones behind it may not have.
  const size_t j = in_flight(facts_, next_);
  int smallest = kText;
  if (!cfg_.allow_text) {
    smallest = 0;
    for (size_t l = 1; l < spec_.levels.size(); ++l)
      if (spec_.chunks[0].level_bytes[l] < spec_.chunks[0].level_bytes[size_t(smallest)]) smallest = int(l);
  }
  for (size_t k = j + 1; k < next_; ++k) {
    const auto& f = facts_[k];
    if (offered_[k] || f.first_byte_t >= 0 || f.option == smallest) continue;
    if (wire_bytes(spec_, k, smallest) >= wire_bytes(spec_, k, f.option)) continue;
    offered_[k] = true;
    out.push_back({k, smallest});
  }
  return out;
}

void Controller::on_served(size_t chunk, int option) {
  if (chunk >= facts_.size() || facts_[chunk].option == option) return;
  facts_[chunk].option = option;
  decisions_[chunk].option = option;
  decisions_[chunk].bytes = wire_bytes(spec_, chunk, option);
  decisions_[chunk].rule += "+replaced";
}

std::vector<Hedge> Controller::hedges(double now) {
  std::vector<Hedge> out;
  if (hedged_ || next_ < spec_.chunks.size() || !insured() || spec_.levels.empty()) return out;
  hedged_ = true;
  const size_t n = spec_.chunks.size();
  double chain = 0;  // recompute of this and every later text chunk
  for (size_t j = n; j-- > 0;) {
    if (facts_[j].option != kText) continue;
    chain += cfg_.cost.recompute_s(spec_, j);
    int smallest = 0;
    for (size_t l = 1; l < spec_.levels.size(); ++l)
      if (spec_.chunks[j].level_bytes[l] < spec_.chunks[j].level_bytes[size_t(smallest)]) smallest = int(l);
    out.push_back({j, smallest, cfg_.slo_s - cfg_.cost.first_token_s - chain, false});
  }
  std::reverse(out.begin(), out.end());
  // Upgrades: what is still to arrive (planned chunks not yet complete, the hedges) goes first.
  int best = 0;
  for (size_t l = 1; l < spec_.levels.size(); ++l) {
    const double a = spec_.levels[l].agreement, b = spec_.levels[size_t(best)].agreement;
    if (a > b || (a == b && spec_.chunks[0].level_bytes[l] < spec_.chunks[0].level_bytes[size_t(best)])) best = int(l);
  }
  const double deadline = cfg_.slo_s - cfg_.cost.first_token_s - upgrade_margin(cfg_.slo_s);
  const double fast = est_.quantile(0.98);
  double bytes = 0;
  for (size_t j = 0; j < n; ++j)
    if (facts_[j].last_byte_t < 0) bytes += double(wire_bytes(spec_, j, facts_[j].option));
  for (const auto& h : out) bytes += double(wire_bytes(spec_, h.chunk, h.option));
  for (size_t j = 0; j < n; ++j) {
    const int o = facts_[j].option;
    if (o == kText || option_agreement(spec_, o) >= option_agreement(spec_, best)) continue;
    bytes += double(wire_bytes(spec_, j, best));
    if (now + cfg_.rtt_s + bytes / fast + cfg_.cost.decode_s(spec_, j, best) > deadline) break;
    out.push_back({j, best, deadline, true});
  }
  return out;
}

bool Controller::insured() const {
  return policy_.kind == PolicyKind::kAdaptive || (policy_.kind == PolicyKind::kPlan && policy_.adaptive_pacing);
}

double Controller::rescue_deadline(double now) const {
  if (!insured() || !cfg_.allow_text) return kInf;
  double chain = 0;  // the recompute of this chunk and every later one
  for (size_t j = next_; j < spec_.chunks.size(); ++j) chain += cfg_.cost.recompute_s(spec_, j);
  const double at = cfg_.slo_s - cfg_.cost.first_token_s - upgrade_margin(cfg_.slo_s) - chain;
  return at >= now ? at : kInf;
}

// ---- pacing ----

bool Controller::adaptive_paced() const {
  return policy_.kind == PolicyKind::kAdaptive || policy_.kind == PolicyKind::kCacheGen ||
         (policy_.kind == PolicyKind::kPlan && policy_.adaptive_pacing);
}

uint64_t Controller::pipeline_window_bytes() const {
  return uint64_t(cfg_.pipeline_bdp * est_.centre() * cfg_.rtt_s);
}

double Controller::tail_s() const {
  double dec = kInf;
  const size_t last = spec_.chunks.size() - 1;
  for (size_t l = 0; l < spec_.levels.size(); ++l) dec = std::min(dec, cfg_.cost.decode_s(spec_, last, int(l)));
  return dec + cfg_.cost.first_token_s;
}

bool Controller::request_due(uint64_t unreceived_of_last, double now) const {
  if (next_ >= spec_.chunks.size()) return false;
  if (next_ == 0 || !adaptive_paced()) return true;
  // Round trips left before the SLO, even on an infinitely fast link: the remaining chunks must
  // go out in at most that many waves.
  const double rtt = std::max(cfg_.rtt_s, 1e-6);
  const double rounds = std::floor((cfg_.slo_s - now - tail_s()) / rtt);
  const size_t left = spec_.chunks.size() - next_ + wave_;  // at the start of this wave
  if (rounds <= 1) return true;
  const double per_wave = std::ceil(double(left) / rounds);
  if (double(wave_) < per_wave && rounds < double(left)) return true;
  // Waiting only helps a decision that a measurement could change: when the plan's next step is
  // text (exact, a few hundred bytes) there is nothing to learn first.
  if (policy_.kind == PolicyKind::kAdaptive && next_ < planned_.size() && planned_[next_] == kText) return true;
  if (policy_.kind == PolicyKind::kPlan && policy_.plan[next_] == kText) return true;  // (its replay)
  // Blind start: at most two chunks are chosen before the link has been measured once.
  if (est_.chunk_samples() == 0 && next_ >= 2 && unreceived_of_last > 0) return false;
  return unreceived_of_last <= decisions_.back().window_bytes;
}

double Controller::next_wakeup(double now) const {
  double t = watch_deadline();
  if (adaptive_paced() && next_ > 0 && next_ < spec_.chunks.size()) {
    const double rtt = std::max(cfg_.rtt_s, 1e-6);
    const double rounds = std::floor((cfg_.slo_s - now - tail_s()) / rtt);
    if (rounds > 1) t = std::min(t, cfg_.slo_s - tail_s() - rounds * rtt + 1e-9);
  }
  return t;
}

// ---- policies ----

int Controller::choose_cachegen(double) {
  // CacheGen's released rule: per-chunk budget SLO / num_chunks, throughput of the last chunk
  // (before any chunk: the first estimate's centre).
  const double budget = cfg_.slo_s / double(spec_.chunks.size());
  const double bps = last_sample_bps_ > 0 ? last_sample_bps_ : est_.centre();
  int best = kText;
  double best_q = -1;
  if (!cfg_.allow_text) {  // no model: fall back to the smallest level instead of text
    best = 0;
    for (size_t l = 1; l < spec_.levels.size(); ++l)
      if (spec_.chunks[next_].level_bytes[l] < spec_.chunks[next_].level_bytes[size_t(best)]) best = int(l);
  }
  for (size_t l = 0; l < spec_.levels.size(); ++l) {
    const double t = double(wire_bytes(spec_, next_, int(l))) / bps;
    if (t <= budget && spec_.levels[l].agreement > best_q) {
      best_q = spec_.levels[l].agreement;
      best = int(l);
    }
  }
  return best;
}

PipelineState Controller::state_at(const TransferModel& tm, double now) const {
  PipelineState st;
  st.now = now;
  for (size_t j = 0; j < next_; ++j)
    st = advance(st, spec_, cfg_.cost, tm, j, facts_[j].option, facts_[j].request_t + cfg_.rtt_s, &facts_[j]);
  return st;
}

double Controller::predict(const TransferModel& tm, const std::vector<int>& rest, double now) const {
  PipelineState st = state_at(tm, now);
  for (size_t k = 0; k < rest.size(); ++k)
    st = advance(st, spec_, cfg_.cost, tm, next_ + k, rest[k], k == 0 ? now + cfg_.rtt_s : 0.0, nullptr);
  return st.prefix_ready + cfg_.cost.first_token_s;
}

double Controller::required(const std::vector<int>& rest, double now) const {
  return required_rate([&](double r) { return predict(constant_rate_model(r, cfg_.rtt_s), rest, now); }, cfg_.slo_s);
}

int Controller::choose_adaptive(double now, Decision& d) {
  const double r_lo = est_.quantile(cfg_.lo_quantile);
  const double r_slow = est_.quantile(cfg_.slow_quantile);
  const double r_mid = est_.centre();
  d.lo_mbps = r_lo * 8e-6;
  const size_t n = spec_.chunks.size();
  auto search = [&](double rate, const std::vector<int>& first_options) {
    const TransferModel tm = constant_rate_model(rate, cfg_.rtt_s);
    PlanSearch ps;
    ps.spec = &spec_;
    ps.cost = &cfg_.cost;
    ps.transfer = &tm;
    ps.node_budget = cfg_.node_budget;
    ps.allowed = options_;
    ps.first_allowed = first_options;
    return ps.run(state_at(tm, now), next_, now + cfg_.rtt_s, cfg_.slo_s);
  };
  const PlanResult mpc = search(r_lo, {});
  d.predicted_ttft_s = mpc.predicted_ttft;
  d.feasible = mpc.feasible;
  planned_.assign(next_, kText);  // what the plan says for this chunk and the ones after it
  planned_.insert(planned_.end(), mpc.options.begin(), mpc.options.end());
  // Continuations each option is judged with: the all-text plan, every fixed level, the MPC tail.
  std::vector<std::vector<int>> tails;
  const size_t rest = n - next_ - 1;
  for (int o : options_) tails.push_back(std::vector<int>(rest, o));
  if (mpc.feasible && mpc.options.size() == rest + 1) tails.emplace_back(mpc.options.begin() + 1, mpc.options.end());
  auto plan_of = [&](int o, const std::vector<int>& tail) {
    std::vector<int> p{o};
    p.insert(p.end(), tail.begin(), tail.end());
    return p;
  };
  // Insurance. The slow cases: the pessimistic and the slow rate, and the centre, each also after
  // an outage of a quarter of the time left. An option is insured when it keeps the SLO reachable
  // (by some continuation) in as many of them as any option does; among insured options quality
  // decides (robust MPC at r_lo).
  const double left = std::max(0.0, cfg_.slo_s - now - cfg_.rtt_s);
  std::vector<TransferModel> slow_cases;
  for (double r : {r_slow, r_lo, r_mid}) {
    slow_cases.push_back(constant_rate_model(r, cfg_.rtt_s));
    slow_cases.push_back(outage_rate_model(r, cfg_.rtt_s, now, now + left / 4));
  }
  std::vector<int> hits(options_.size(), 0);
  int best_hits = 0;
  for (size_t i = 0; i < options_.size(); ++i) {
    for (const auto& tm : slow_cases)
      for (const auto& tail : tails)
        if (predict(tm, plan_of(options_[i], tail), now) <= cfg_.slo_s) {
          ++hits[i];
          break;
        }
    best_hits = std::max(best_hits, hits[i]);
  }
  std::vector<int> insured;
  for (size_t i = 0; i < options_.size(); ++i)
    if (hits[i] == best_hits) insured.push_back(options_[i]);
  if (best_hits > 0) {
    if (mpc.feasible && std::find(insured.begin(), insured.end(), mpc.options.front()) != insured.end()) {
      d.rule = "mpc";
      return mpc.options.front();
    }
    const PlanResult p = search(r_lo, insured);
    if (p.feasible && !p.options.empty()) {
      d.rule = "insured";
      d.predicted_ttft_s = p.predicted_ttft;
      return p.options.front();
    }
  }
  // No plan meets the SLO at r_lo: the insured option that keeps it reachable at the lowest
  // constant rate (ties within 1 %: the better quality, then fewer bytes).
  const std::vector<int>& pool = best_hits > 0 ? insured : options_;
  int best = pool.front();
  double best_r = kInf;
  for (int o : pool) {
    double R = kInf;
    for (const auto& tail : tails) {
      R = std::min(R, required(plan_of(o, tail), now));
      if (R == 0) break;
    }
    const bool better_rate = R < best_r * 0.99;
    const bool tie = R < kInf && !better_rate && R <= best_r * 1.01;
    const bool better_tie = tie && (option_agreement(spec_, o) > option_agreement(spec_, best) ||
                                    (option_agreement(spec_, o) == option_agreement(spec_, best) &&
                                     wire_bytes(spec_, next_, o) < wire_bytes(spec_, next_, best)));
    if (better_rate || better_tie) {
      if (better_rate) best_r = R;
      best = o;
    }
  }
  if (best_r < kInf) {
    d.rule = "robust";
    return best;
  }
  // No rate meets the SLO as modelled: if anything still can, it is because the link or the
  // round trip is better than believed, so the fastest plan at the belief's 98 % quantile.
  d.rule = "best-effort";
  const PlanResult fast = search(est_.quantile(0.98), {});
  return fast.options.empty() ? options_.back() : fast.options.front();
}

Decision Controller::choose(double now) {
  if (next_ >= spec_.chunks.size()) throw std::logic_error("controller: every chunk was already chosen");
  Decision d;
  d.chunk = next_;
  d.at_s = now;
  d.est_mbps = est_.centre() * 8e-6;
  switch (policy_.kind) {
    case PolicyKind::kAdaptive: d.option = choose_adaptive(now, d); break;
    case PolicyKind::kFixed: d.option = resolve_option(spec_, policy_.level); break;
    case PolicyKind::kQ8: d.option = spec_.find_level("q8"); break;
    case PolicyKind::kText: d.option = kText; break;
    case PolicyKind::kCacheGen: d.option = choose_cachegen(now); break;
    case PolicyKind::kPlan:
    case PolicyKind::kOracle: d.option = policy_.plan[next_]; break;
  }
  d.bytes = wire_bytes(spec_, next_, d.option);
  d.window_bytes = pipeline_window_bytes();
  d.rescue_s = rescue_deadline(now);
  d.rescue_latest_s = d.rescue_s + upgrade_margin(cfg_.slo_s);
  auto& f = facts_[next_];
  f.option = d.option;
  f.requested = true;
  f.request_t = now;
  idle_request_[next_] = in_flight(facts_, next_) >= next_;
  decisions_.push_back(d);
  ++next_;
  ++wave_;
  return d;
}

}  // namespace kvstream::streamer
