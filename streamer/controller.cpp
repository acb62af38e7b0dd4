// Adaptation controller (see controller.h).
#include "streamer/controller.h"

#include <algorithm>
#include <cmath>
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
constexpr double kSampleResolutionS = 1e-3;  // Mahimahi delivers in 1 ms opportunities
}  // namespace

Controller::Controller(StreamSpec spec, Policy policy, ControllerConfig cfg)
    : spec_(std::move(spec)), policy_(std::move(policy)), cfg_(std::move(cfg)) {
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
  probe_.assign(spec_.chunks.size(), false);
  decode_sum_.assign(spec_.levels.size(), 0.0);
  decode_tokens_.assign(spec_.levels.size(), 0.0);
  if (cfg_.cost.decode_s_per_token.size() < spec_.levels.size())
    cfg_.cost.decode_s_per_token.resize(spec_.levels.size(), 0.0);
}

void Controller::on_first_byte(size_t chunk, double t, uint64_t bytes_so_far) {
  if (chunk >= facts_.size()) return;
  auto& f = facts_[chunk];
  if (f.first_byte_t >= 0) return;
  f.first_byte_t = t;
  f.first_bytes = bytes_so_far;
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
  // would overstate the rate by up to one burst (a 4 KB probe behind a text chunk measured 5.8
  // Mbit/s on a 2.3 Mbit/s link). Otherwise (unknown, or one burst) the service start is taken as
  // back to back after the previous chunk, or one RTT after the request when the link was idle,
  // never later than the first byte seen.
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
  // A chunk that arrived in one burst (first byte = last byte, e.g. within one delivery
  // opportunity of a fast link, or when the request took longer than the handshake RTT) still
  // measures the link: it moved `bytes` in under the time resolution, so bytes / resolution is a
  // lower bound of the throughput. Without it a fast link gives no sample and adaptive keeps
  // waiting for one (one chunk per round trip).
  dur = std::max(dur, kSampleResolutionS);
  f.throughput_bps = double(counted) / dur;
  // Probe chunks always count: they are the smallest level that measures the link.
  if (bytes >= cfg_.min_sample_bytes || probe_[chunk]) {
    const double bps = f.throughput_bps;
    samples_.push_back(bps);
    all_samples_.push_back(bps * 8e-6);
    while (samples_.size() > std::max<size_t>(cfg_.window, 1)) samples_.pop_front();
    last_sample_ = bps;
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

double Controller::estimate_bytes_per_s() const {
  if (samples_.empty()) return cfg_.prior_mbps * 1e6 / 8.0;
  double inv = 0;
  for (double s : samples_) inv += 1.0 / s;
  return cfg_.safety * double(samples_.size()) / inv;
}

std::vector<double> Controller::samples_mbps() const { return all_samples_; }

uint64_t Controller::pipeline_window_bytes() const {
  return uint64_t(cfg_.pipeline_bdp * estimate_bytes_per_s() * cfg_.rtt_s);
}

bool Controller::request_due(uint64_t unreceived_of_last) const {
  if (next_ >= spec_.chunks.size()) return false;
  if (next_ == 0 || policy_.kind == PolicyKind::kOracle) return true;
  // Blind start: at most two chunks are chosen before the link has been measured once.
  const bool adaptive_pacing =
      policy_.kind == PolicyKind::kAdaptive || (policy_.kind == PolicyKind::kPlan && policy_.adaptive_pacing);
  if (adaptive_pacing && samples_.empty() && next_ >= 2 && unreceived_of_last > 0)
    return false;
  return unreceived_of_last <= decisions_.back().window_bytes;
}

int Controller::choose_cachegen(double) {
  // CacheGen's released rule: per-chunk budget SLO / num_chunks, throughput of the last chunk.
  const double budget = cfg_.slo_s / double(spec_.chunks.size());
  const double bps = last_sample_ > 0 ? last_sample_ : cfg_.prior_mbps * 1e6 / 8.0;
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

int Controller::choose_adaptive(double now, Decision& d) {
  const double bps = estimate_bytes_per_s();
  const TransferModel tm = constant_rate_model(bps, cfg_.rtt_s);
  PipelineState st;
  st.now = now;
  for (size_t j = 0; j < next_; ++j)
    st = advance(st, spec_, cfg_.cost, tm, j, facts_[j].option, facts_[j].request_t + cfg_.rtt_s, &facts_[j]);
  PlanSearch ps;
  ps.spec = &spec_;
  ps.cost = &cfg_.cost;
  ps.transfer = &tm;
  ps.node_budget = cfg_.node_budget;
  for (size_t l = 0; l < spec_.levels.size(); ++l) ps.allowed.push_back(int(l));
  if (cfg_.allow_text) ps.allowed.push_back(kText);
  PlanResult r = ps.run(st, next_, now + cfg_.rtt_s, cfg_.slo_s);
  // Probe: until a chunk has measured the link, fetch the smallest KV level big enough to give a
  // throughput sample (>= min_sample_bytes on the wire; the largest level if none is). The prior
  // is only a guess: a text chunk (a few hundred bytes) measures nothing and its recompute is what
  // a fast link cannot afford, and a large level is what a slow link cannot afford; a small level
  // costs little either way. (Probing with a level below the sample threshold would leave the
  // controller on its prior for the whole context.) One exception: the first chunk may stay text
  // when the plan picks it. Text costs the link almost nothing, and its recompute needs no earlier
  // KV, so it overlaps the transfers of the rest. It measures nothing, so from the second chunk on
  // the probe is fetched until a sample exists. The plan's prediction is kept.
  if (samples_.empty() && !r.options.empty() && (r.options.front() != kText || next_ > 0)) {
    int probe = -1, largest = 0;
    for (size_t l = 0; l < spec_.levels.size(); ++l) {
      const uint64_t b = wire_bytes(spec_, next_, int(l));
      if (b > wire_bytes(spec_, next_, largest)) largest = int(l);
      if (b >= cfg_.min_sample_bytes && (probe < 0 || b < wire_bytes(spec_, next_, probe))) probe = int(l);
    }
    r.options.front() = probe >= 0 ? probe : largest;
    probe_[next_] = true;
  }
  d.predicted_ttft_s = r.predicted_ttft;
  d.feasible = r.feasible;
  return r.options.empty() ? kText : r.options.front();
}

Decision Controller::choose(double now) {
  if (next_ >= spec_.chunks.size()) throw std::logic_error("controller: every chunk was already chosen");
  Decision d;
  d.chunk = next_;
  d.at_s = now;
  d.est_mbps = estimate_bytes_per_s() * 8e-6;
  switch (policy_.kind) {
    case PolicyKind::kAdaptive: d.option = choose_adaptive(now, d); break;
    case PolicyKind::kFixed: d.option = resolve_option(spec_, policy_.level); break;
    case PolicyKind::kQ8: d.option = spec_.find_level("q8"); break;
    case PolicyKind::kText: d.option = kText; break;
    case PolicyKind::kCacheGen: d.option = choose_cachegen(now); break;
    case PolicyKind::kPlan:
    case PolicyKind::kOracle: d.option = policy_.plan[next_]; break;
  }
  if (policy_.kind == PolicyKind::kPlan && policy_.adaptive_pacing && samples_.empty() && d.option != kText)
    probe_[next_] = true;  // what adaptive's probe rule made of this chunk
  d.bytes = wire_bytes(spec_, next_, d.option);
  d.window_bytes = pipeline_window_bytes();
  auto& f = facts_[next_];
  f.option = d.option;
  f.requested = true;
  f.request_t = now;
  decisions_.push_back(d);
  ++next_;
  return d;
}

}  // namespace kvstream::streamer
