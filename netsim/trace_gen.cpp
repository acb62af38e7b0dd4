// netsim/trace_gen.cpp — the synthetic link families (see trace_gen.h for what each one is).
#include "netsim/trace_gen.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>

namespace kvstream::netsim {

namespace {

// Portable draws on top of mt19937_64 (whose output sequence the standard fixes).
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : g_(seed) {}
  double uniform() { return static_cast<double>(g_() >> 11) * 0x1.0p-53; }  // [0, 1)
  double uniform(double a, double b) { return a + (b - a) * uniform(); }
  double log_uniform(double a, double b) { return std::exp(uniform(std::log(a), std::log(b))); }
  double normal() {  // Box-Muller
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }
  double exponential(double mean) { return -mean * std::log(1.0 - uniform()); }

 private:
  std::mt19937_64 g_;
};

// Accumulates "time rate" lines; equal neighbours are merged.
class Writer {
 public:
  void at(double t_s, double mbps) {
    mbps = std::max(0.0, mbps);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3f %.6f\n", t_s, mbps);
    const std::string rate = std::strchr(buf, ' ');
    if (rate == last_rate_) return;
    last_rate_ = rate;
    out_ += buf;
  }
  std::string out_;

 private:
  std::string last_rate_;
};

std::string header(const GenOptions& o, const std::string& params) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "# kvstream netsim gen --family %s --seed %llu --kv-mbps %g --duration-s %g: %s\n",
                o.family.c_str(), static_cast<unsigned long long>(o.seed), o.kv_mbps, o.duration_s, params.c_str());
  return buf;
}

std::string fmt(const char* f, double a, double b = 0, double c = 0) {
  char buf[160];
  std::snprintf(buf, sizeof buf, f, a, b, c);
  return buf;
}

std::string fast(const GenOptions& o, Rng& r) {
  const double rate = o.kv_mbps * r.log_uniform(10, 1000);
  Writer w;
  for (double t = 0; t < o.duration_s; t += 0.05) w.at(t, rate * (1 + 0.1 * r.uniform(-1, 1)));
  return header(o, fmt("%.3f Mbit/s", rate)) + w.out_;
}

std::string slow_start(const GenOptions& o, Rng& r) {
  const double slow_s = r.uniform(1, 4), low = o.kv_mbps * r.log_uniform(0.01, 0.05);
  const double target = o.kv_mbps * r.log_uniform(0.5, 30), doubling_s = r.uniform(0.1, 0.4);
  Writer w;
  double t = 0;
  for (; t < slow_s && t < o.duration_s; t += 0.1) w.at(t, low * (1 + 0.1 * r.uniform(-1, 1)));
  for (double rate = low; t < o.duration_s; t += 0.1) {
    rate = std::min(target, rate * std::pow(2.0, 0.1 / doubling_s));
    w.at(t, rate * (rate < target ? 1.0 : 1 + 0.2 * r.uniform(-1, 1)));
  }
  return header(o, fmt("%.3f Mbit/s for %.2f s, doubling every %.2f s", low, slow_s, doubling_s) +
                       fmt(" to %.3f Mbit/s", target)) + w.out_;
}

std::string steps(const GenOptions& o, Rng& r) {
  double base = o.kv_mbps * r.log_uniform(0.3, 30);
  const double gap = r.uniform(0.1, 0.6);
  const std::string params = fmt("base %.3f Mbit/s, an event every %.2f s on average", base, gap);
  Writer w;
  double t = 0, next = r.uniform(0.02, 0.4);
  while (t < o.duration_s) {
    w.at(t, base * (1 + 0.05 * r.uniform(-1, 1)));
    t = std::min(next, t + 0.1);
    if (t < next) continue;
    const double kind = r.uniform();
    if (kind < 0.35) {  // outage
      w.at(t, 0);
      t += r.uniform(0.05, 0.5);
    } else if (kind < 0.7) {  // step drop
      w.at(t, base * r.log_uniform(0.01, 0.2));
      t += r.uniform(0.2, 2.0);
    } else {  // a new level
      base = std::clamp(base * r.log_uniform(0.3, 3.0), o.kv_mbps * 0.1, o.kv_mbps * 100);
    }
    next = t + r.exponential(gap);
  }
  return header(o, params) + w.out_;
}

std::string long_rtt(const GenOptions& o, Rng& r) {
  const double delay_ms = r.uniform(80, 250), rate = o.kv_mbps * r.log_uniform(0.3, 100);
  Writer w;
  for (double t = 0; t < o.duration_s; t += 0.1) w.at(t, rate * (1 + 0.15 * r.uniform(-1, 1)));
  return header(o, fmt("%.3f Mbit/s, %.1f ms one-way path delay", rate, delay_ms)) +
         fmt("# kvstream: delay_ms=%.1f\n", delay_ms) + w.out_;
}

std::string jitter(const GenOptions& o, Rng& r) {
  const double mean = o.kv_mbps * r.log_uniform(0.5, 30), sigma = r.uniform(0.8, 1.5);
  Writer w;
  for (double t = 0; t < o.duration_s; t += 0.02) w.at(t, mean * std::exp(sigma * r.normal() - sigma * sigma / 2));
  return header(o, fmt("mean %.3f Mbit/s, log-normal sigma %.2f per 20 ms", mean, sigma)) + w.out_;
}

std::string markov(const GenOptions& o, Rng& r) {
  const double rate[4] = {o.kv_mbps * r.log_uniform(3, 30), o.kv_mbps * r.log_uniform(0.5, 3),
                          o.kv_mbps * r.log_uniform(0.03, 0.3), 0.0};
  const double stay[4] = {0.92, 0.85, 0.8, 0.6};
  int s = static_cast<int>(r.uniform() * 3);  // start in good, fair or poor
  Writer w;
  for (double t = 0; t < o.duration_s; t += 0.05) {
    w.at(t, rate[s] * (1 + 0.3 * r.uniform(-1, 1)));
    if (r.uniform() >= stay[s]) {  // move to a neighbouring state (outage returns to poor)
      if (s == 0) s = 1;
      else if (s == 3) s = 2;
      else s += r.uniform() < 0.5 ? -1 : 1;
    }
  }
  return header(o, fmt("good %.3f, fair %.3f, poor %.3f Mbit/s, outage; 50 ms steps", rate[0], rate[1], rate[2])) +
         w.out_;
}

}  // namespace

const std::vector<std::string>& link_families() {
  static const std::vector<std::string> f = {"fast", "slow-start", "steps", "long-rtt", "jitter", "markov"};
  return f;
}

std::string generate_trace(const GenOptions& o) {
  if (!(o.kv_mbps > 0) || !std::isfinite(o.kv_mbps)) throw std::invalid_argument("netsim gen: kv rate must be > 0");
  if (!(o.duration_s > 0) || o.duration_s > 1e6) throw std::invalid_argument("netsim gen: duration must be in (0, 10^6] s");
  // One stream per (family, seed): the family's index is mixed in so families do not share draws.
  const auto& f = link_families();
  const auto it = std::find(f.begin(), f.end(), o.family);
  if (it == f.end()) {
    std::string names;
    for (const auto& n : f) names += (names.empty() ? "" : ", ") + n;
    throw std::invalid_argument("netsim gen: unknown family '" + o.family + "' (families: " + names + ")");
  }
  Rng r(o.seed * 0x9E3779B97F4A7C15ull + static_cast<std::uint64_t>(it - f.begin()));
  switch (it - f.begin()) {
    case 0: return fast(o, r);
    case 1: return slow_start(o, r);
    case 2: return steps(o, r);
    case 3: return long_rtt(o, r);
    case 4: return jitter(o, r);
    default: return markov(o, r);
  }
}

}  // namespace kvstream::netsim
