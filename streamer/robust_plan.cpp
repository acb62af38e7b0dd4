// Required rates and option pruning (see robust_plan.h).
#include "streamer/robust_plan.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace kvstream::streamer {

double required_rate(const std::function<double(double)>& ttft_at, double deadline, int iterations) {
  if (ttft_at(kMinRate) <= deadline) return 0.0;
  if (ttft_at(kMaxRate) > deadline) return std::numeric_limits<double>::infinity();
  double lo = std::log(kMinRate), hi = std::log(kMaxRate);  // lo misses, hi meets
  for (int i = 0; i < iterations; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (ttft_at(std::exp(mid)) <= deadline) hi = mid;
    else lo = mid;
  }
  return std::exp(hi);
}

std::vector<int> pareto_options(const StreamSpec& s, const CostModel& c, bool allow_text) {
  const size_t L = s.levels.size();
  auto decode_total = [&](size_t l) {
    double t = 0;
    for (size_t j = 0; j < s.chunks.size(); ++j) t += c.decode_s(s, j, int(l));
    return t;
  };
  std::vector<double> dec(L);
  for (size_t l = 0; l < L; ++l) dec[l] = decode_total(l);
  const double slack = 20e-6 * double(s.chunks.size());
  std::vector<int> out;
  for (size_t a = 0; a < L; ++a) {
    bool dominated = false;
    for (size_t b = 0; b < L && !dominated; ++b) {
      if (a == b) continue;
      bool bytes_le = true, bytes_lt = false;
      for (size_t j = 0; j < s.chunks.size(); ++j) {
        const uint64_t x = s.chunks[j].level_bytes[b], y = s.chunks[j].level_bytes[a];
        bytes_le = bytes_le && x <= y;
        bytes_lt = bytes_lt || x < y;
      }
      const double qa = s.levels[a].agreement, qb = s.levels[b].agreement;
      const bool decode_ok = dec[b] <= std::max(dec[a] * 1.05, dec[a] + slack);
      // b dominates a: no worse anywhere, better somewhere (ties broken by index)
      if (bytes_le && qb >= qa && decode_ok && (bytes_lt || qb > qa || b < a)) dominated = true;
    }
    if (!dominated) out.push_back(int(a));
  }
  if (allow_text) out.push_back(kText);
  std::stable_sort(out.begin(), out.end(),
                   [&](int x, int y) { return option_agreement(s, x) > option_agreement(s, y); });
  return out;
}

}  // namespace kvstream::streamer
