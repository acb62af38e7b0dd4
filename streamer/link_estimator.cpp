// Link throughput belief (see link_estimator.h).
#include "streamer/link_estimator.h"

#include <algorithm>
#include <cmath>

#include "streamer/wire.h"

namespace kvstream::streamer {

namespace {
constexpr double kSampleBytes = 8192;  // a sample of this many bytes has weight 1
constexpr double kPoolSigma = 0.7;     // spread pooled with the observations' own (weight 1)
constexpr double kMinSampleS = 1e-3;   // a handshake shorter than this is one burst: no sample
}  // namespace

double normal_quantile(double p) {
  // Acklam's algorithm.
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                             1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01,  -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                             3.754408661907416e+00};
  p = std::clamp(p, 1e-12, 1 - 1e-12);
  const double lo = 0.02425;
  if (p < lo) {
    const double q = std::sqrt(-2 * std::log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
           ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > 1 - lo) return -normal_quantile(1 - p);
  const double q = p - 0.5, r = q * q;
  return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
         (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

LinkEstimator::LinkEstimator(Config c) : cfg_(c) {}

void LinkEstimator::set_memory(const LinkMemory& m) {
  if (cfg_.use_memory && m.valid && std::isfinite(m.mu) && m.sigma >= 0 && m.age_s >= 0) mem_ = m;
}

void LinkEstimator::on_handshake(uint64_t total, uint64_t first_read, double first_t, double last_t, double) {
  if (!cfg_.use_handshake || total <= first_read || !(last_t - first_t >= kMinSampleS)) return;
  const double bytes = double(total - first_read);
  hs_x_ = std::log(bytes / (last_t - first_t));
  hs_weight_ = std::min(1.0, bytes / kSampleBytes);
}

void LinkEstimator::on_report(const LinkReport& r, double app_rtt_s) {
  if (!cfg_.use_report || !r.valid) return;
  // The sender's TCP spans the path only if it sees (about) the RTT the receiver sees.
  if (!(double(r.min_rtt_us) * 1e-6 >= 0.5 * app_rtt_s)) {
    ++ignored_reports_;
    return;
  }
  if (r.app_limited || r.delivery_kBps == 0) return;
  report_x_ = std::log(double(r.delivery_kBps) * 1e3);
  report_weight_ = 1.0;
}

void LinkEstimator::on_chunk_sample(double bytes, double dur_s) {
  if (!(bytes > 0) || !(dur_s > 0)) return;
  chunks_.push_back({std::log(bytes / dur_s), std::min(1.5, bytes / kSampleBytes)});
  while (chunks_.size() > std::max<size_t>(cfg_.window, 1)) chunks_.pop_front();
}

void LinkEstimator::cap_current(double bytes, double elapsed_s) {
  if (!(elapsed_s > 0)) return;
  cap_bps_ = std::max(bytes, 1.0) / elapsed_s;
}

void LinkEstimator::moments(double& mu, double& var, double& wsum) const {
  double sw = 0, sx = 0;
  auto add = [&](double x, double w) { sw += w, sx += w * x; };
  double mem_var = 0;
  if (mem_.valid) {
    const double drift = cfg_.drift_per_sqrt_min * std::sqrt(mem_.age_s / 60.0);
    mem_var = mem_.sigma * mem_.sigma + drift * drift;
    add(mem_.mu, 1.0);
  }
  if (hs_weight_ > 0) add(hs_x_, hs_weight_);
  if (report_weight_ > 0) add(report_x_, report_weight_);
  // recent chunks weigh more: the newest 1, then 0.8, 0.64, ...
  double recency = 1.0;
  for (auto it = chunks_.rbegin(); it != chunks_.rend(); ++it, recency *= 0.8) add(it->x, it->w * recency);
  wsum = sw;
  if (sw <= 0) {
    mu = std::log(cfg_.prior_mbps * 1e6 / 8);
    var = cfg_.sigma_prior * cfg_.sigma_prior;
    return;
  }
  mu = sx / sw;
  double ss = 0;
  auto dev = [&](double x, double w) { ss += w * (x - mu) * (x - mu); };
  if (mem_.valid) dev(mem_.mu, 1.0), ss += mem_var;
  if (hs_weight_ > 0) dev(hs_x_, hs_weight_);
  if (report_weight_ > 0) dev(report_x_, report_weight_);
  recency = 1.0;
  for (auto it = chunks_.rbegin(); it != chunks_.rend(); ++it, recency *= 0.8) dev(it->x, it->w * recency);
  var = (ss + kPoolSigma * kPoolSigma) / (sw + 1.0);
  var *= 1.0 + 1.0 / std::max(sw, 0.05);  // predictive spread of a mean of few observations
}

double LinkEstimator::sigma() const {
  double mu, var, w;
  moments(mu, var, w);
  return std::clamp(std::sqrt(var), cfg_.sigma_floor, cfg_.sigma_prior);
}

double LinkEstimator::centre() const { return quantile(0.5); }

double LinkEstimator::quantile(double q) const {
  double mu, var, w;
  moments(mu, var, w);
  const double s = std::clamp(std::sqrt(var), cfg_.sigma_floor, cfg_.sigma_prior);
  double r = std::exp(mu + normal_quantile(q) * s);
  if (cap_bps_ > 0) r = std::min(r, cap_bps_);
  return r;
}

LinkMemory LinkEstimator::to_memory() const {
  double mu, var, w;
  moments(mu, var, w);
  LinkMemory m;
  m.valid = w > 0;
  m.mu = mu;
  m.sigma = std::clamp(std::sqrt(var), cfg_.sigma_floor, cfg_.sigma_prior);
  return m;
}

std::string LinkEstimator::sources() const {
  std::string s;
  auto add = [&](const char* n) { s += (s.empty() ? "" : "+") + std::string(n); };
  if (mem_.valid) add("memory");
  if (hs_weight_ > 0) add("handshake");
  if (report_weight_ > 0) add("report");
  if (!chunks_.empty()) add("chunks");
  if (s.empty()) add("prior");
  return s;
}

}  // namespace kvstream::streamer
