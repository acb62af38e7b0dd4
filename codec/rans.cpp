#include "codec/rans.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace kvstream::codec {

RansTable rans_normalize(std::span<const double> counts, int scale_bits) {
  const size_t n = counts.size();
  if (n < 2 || n > static_cast<size_t>(kRansMaxSymbols))
    throw std::invalid_argument("rans_normalize: " + std::to_string(n) + " symbols (need 2..256)");
  if (scale_bits < 1 || scale_bits > kRansMaxScaleBits || n > (1u << scale_bits))
    throw std::invalid_argument("rans_normalize: bad scale_bits " + std::to_string(scale_bits));
  const int64_t total = int64_t(1) << scale_bits;
  double sum = 0;
  for (double c : counts) {
    if (!(c >= 0) || !std::isfinite(c)) throw std::invalid_argument("rans_normalize: bad count");
    sum += c;
  }
  RansTable t;
  t.scale_bits = scale_bits;
  t.freq.assign(n, 1);
  int64_t have = static_cast<int64_t>(n);
  if (sum > 0) {
    have = 0;
    for (size_t s = 0; s < n; ++s) {
      const double want = counts[s] / sum * double(total);
      t.freq[s] = static_cast<uint32_t>(std::max<double>(1.0, std::floor(want + 0.5)));
      have += t.freq[s];
    }
  }
  // Fix the total greedily: each +1/-1 goes where it changes the expected code length
  // sum_s count[s] * log2(total / freq[s]) the least (or improves it the most).
  while (have != total) {
    size_t best = n;
    double best_cost = 0;
    for (size_t s = 0; s < n; ++s) {
      const double f = t.freq[s];
      double cost;
      if (have > total) {
        if (t.freq[s] <= 1) continue;
        cost = counts[s] * std::log2(f / (f - 1));  // bits lost by decrementing
      } else {
        cost = -counts[s] * std::log2((f + 1) / f);  // bits gained (negative) by incrementing
      }
      if (best == n || cost < best_cost) best = s, best_cost = cost;
    }
    if (have > total) --t.freq[best], --have;
    else ++t.freq[best], ++have;
  }
  rans_finish_table(t);
  return t;
}

void rans_finish_table(RansTable& t) {
  const size_t n = t.freq.size();
  if (t.scale_bits < 1 || t.scale_bits > kRansMaxScaleBits)
    throw std::invalid_argument("rANS table: scale_bits " + std::to_string(t.scale_bits) +
                                " outside [1, 12]");
  if (n < 2 || n > static_cast<size_t>(kRansMaxSymbols))
    throw std::invalid_argument("rANS table: " + std::to_string(n) + " symbols (need 2..256)");
  t.cum.assign(n + 1, 0);
  uint64_t sum = 0;
  for (size_t s = 0; s < n; ++s) {
    if (t.freq[s] == 0) throw std::invalid_argument("rANS table: zero frequency");
    t.cum[s] = static_cast<uint32_t>(sum);
    sum += t.freq[s];
    if (sum > (1u << t.scale_bits)) break;
  }
  if (sum != (1u << t.scale_bits))
    throw std::invalid_argument("rANS table: frequencies do not sum to 2^scale_bits");
  t.cum[n] = static_cast<uint32_t>(sum);
}

void rans_build_slots(const RansTable& t, uint32_t* out) {
  for (size_t s = 0; s < t.freq.size(); ++s)
    for (uint32_t j = 0; j < t.freq[s]; ++j)
      out[t.cum[s] + j] = rans_slot_entry(static_cast<uint32_t>(s), j, t.freq[s]);
}

}  // namespace kvstream::codec
