// The controller's belief about the link's throughput, from every source a session reveals:
// a configured prior, a remembered estimate of this sender (with its age), the handshake's timing
// and bytes, the sender's TCP_INFO link report, and each chunk's arrival. Pure computation.
//
// Model. Throughput is log-normal: the belief is a centre mu and a spread sigma of ln(bytes/s).
// Each source contributes weighted observations of ln(rate); the centre is their weighted mean
// (recent chunk samples weigh more) and the spread is the observations' own dispersion pooled
// with a prior spread, inflated when observations are few (the predictive spread of a mean of n,
// sqrt(1 + 1/n)). So a plan made on quantile(0.1) is pessimistic, and more so while little is
// known: one handshake sample leaves a factor of ~4 between the centre and the 10 % quantile,
// five consistent chunks ~1.5.
//
// Sources and how much each is trusted:
// - prior (prior_mbps): centre only, with sigma_prior = 2.3 (a factor of 10 per sigma): it says
//   "somewhere between 0.1x and 10x"; any real observation outweighs it.
// - memory: a previous fetch's centre and spread for this sender, the spread growing with the
//   estimate's age (random-walk drift of 0.5 per sqrt(minute)); weight 1.
// - handshake: the bytes that arrived after the first read of HELLO_ACK + MANIFEST (+ PROFILE)
//   over the time they took. Only a sample when that took >= 1 ms (below it a 1-MTU burst says
//   nothing about the rate); weight = bytes / 8 KB (a small sample counts less).
// - link report (the sender's TCP_INFO): used only when the sender's min RTT is at least half the
//   RTT the receiver measured, i.e. the sender's TCP spans the path. Through a proxy or the
//   trace relay (which terminates TCP on loopback) the sender sees a sub-millisecond RTT and its
//   numbers describe the proxy, not the path: ignored (counted in ignored_reports()). When used,
//   a delivery rate that is not application-limited is a sample of weight 1.
// - chunks: bytes / time after the first read of the chunk (see Controller::on_last_byte), weight
//   bytes / 8 KB capped at 1.5; the last `window` chunk samples are kept.
// - a chunk in flight for longer than its bytes should take caps the belief (cap_current): while
//   it lasts, every quantile is at most the rate it implies.
#pragma once
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>

namespace kvstream::streamer {

struct LinkMemory {
  bool valid = false;
  double mu = 0;     // ln(bytes/s)
  double sigma = 0;  // spread of ln(rate) when it was stored
  double age_s = 0;  // how long ago
};

struct LinkReport;  // streamer/wire.h

struct LinkEstimatorConfig {
  double prior_mbps = 1.0;
  double sigma_prior = 2.3;
  double sigma_floor = 0.15;        // no belief is tighter than this (~15 %)
  double drift_per_sqrt_min = 0.5;  // memory's spread grows with its age
  size_t window = 6;                // chunk samples kept
  bool use_handshake = true, use_report = true, use_memory = true;
};

class LinkEstimator {
 public:
  using Config = LinkEstimatorConfig;
  explicit LinkEstimator(Config c = Config());

  void set_memory(const LinkMemory& m);
  // HELLO_ACK + MANIFEST: total bytes, the bytes of the first read and its time, the time the
  // last byte arrived; rtt_s = HELLO sent -> HELLO_ACK read.
  void on_handshake(uint64_t total_bytes, uint64_t first_read_bytes, double first_t, double last_t, double rtt_s);
  void on_report(const LinkReport& r, double app_rtt_s);
  // A chunk's sample: `bytes` over `dur_s` (already net of the first read).
  void on_chunk_sample(double bytes, double dur_s);
  // The chunk in flight has delivered `bytes` in `elapsed_s` (an upper bound on the rate now);
  // clear_cap() when it completes (its sample replaces the cap).
  void cap_current(double bytes, double elapsed_s);
  void clear_cap() { cap_bps_ = 0; }

  double quantile(double q) const;  // bytes/s
  double centre() const;            // exp(mu), bytes/s (the point estimate)
  double sigma() const;
  size_t samples() const { return chunks_.size() + (hs_weight_ > 0 ? 1 : 0) + (report_weight_ > 0 ? 1 : 0); }
  size_t chunk_samples() const { return chunks_.size(); }
  size_t ignored_reports() const { return ignored_reports_; }
  LinkMemory to_memory() const;     // what to remember for the next fetch (age 0)
  std::string sources() const;      // e.g. "prior+handshake+chunks", for reports

 private:
  struct Obs {
    double x, w;  // ln(bytes/s), weight
  };
  void moments(double& mu, double& var, double& wsum) const;

  Config cfg_;
  LinkMemory mem_;
  double hs_x_ = 0, hs_weight_ = 0;
  double report_x_ = 0, report_weight_ = 0;
  std::deque<Obs> chunks_;
  double cap_bps_ = 0;
  size_t ignored_reports_ = 0;
};

// Inverse of the standard normal CDF (Acklam's rational approximation, |error| < 1.2e-9).
double normal_quantile(double p);

}  // namespace kvstream::streamer
