// Anchor/delta coding study (delta_study.h).
#include "bench/delta_study.h"

#include <cmath>
#include <stdexcept>
#include <unordered_map>

#include "codec/rope.h"

namespace kvstream::codec {
namespace {

// Sum over a histogram of -count * log2(count / n): the empirical code length in bits.
double entropy_bits(const std::unordered_map<int64_t, size_t>& h, size_t n) {
  double bits = 0;
  for (const auto& [sym, c] : h) bits -= double(c) * std::log2(double(c) / double(n));
  return bits;
}

}  // namespace

std::vector<DeltaStudyRow> delta_study(const KvCache& kv0, const Profile& p, int group_tokens) {
  if (!(kv0.shape == p.shape)) throw std::invalid_argument("delta_study: profile is for another model shape");
  if (group_tokens < 2) throw std::invalid_argument("delta_study: group_tokens must be >= 2");
  kv0.validate();
  KvCache kv = kv0;
  if (!kv.keys_pre_rope) rope_remove_from_keys(kv, 0);
  const size_t T = kv.num_tokens(), d = size_t(kv.shape.kv_dim());
  const int first_layer = p.has_token_table() && kv.shape.n_layers > 1 ? 1 : 0;
  std::vector<DeltaStudyRow> rows;
  for (const ProfileLevel& L : p.levels) {
    DeltaStudyRow r;
    r.level = L.name;
    double table = 0, direct = 0, anchor = 0, previous = 0;
    for (int l = first_layer; l < kv.shape.n_layers; ++l)
      for (int kind = 0; kind < 2; ++kind) {
        const std::vector<float>& x = kind == 0 ? kv.k[size_t(l)] : kv.v[size_t(l)];
        for (size_t c = 0; c < d; ++c) {
          const size_t lane = size_t(lane_of(p.shape, l, Kind(kind), int(c)));
          const RansTable& t = L.tables[lane];
          const double M = double(1u << t.scale_bits);
          std::vector<int64_t> q(T);
          for (size_t i = 0; i < T; ++i)
            q[i] = int64_t(std::nearbyint((double(x[i * d + c]) - p.mean[lane]) / L.step[lane]));
          std::unordered_map<int64_t, size_t> h_direct, h_anchor, h_prev;
          for (size_t i = 0; i < T; ++i) {
            const int64_t s = q[i] - L.q_min[lane];
            const int64_t n = int64_t(t.freq.size());
            const bool esc = s < 0 || s >= n - 1;
            table += std::log2(M / double(t.freq[size_t(esc ? n - 1 : s)])) + (esc ? 16.0 : 0.0);
            ++h_direct[q[i]];
            const size_t a = i - i % size_t(group_tokens);
            ++h_anchor[i == a ? (int64_t(1) << 40) + q[i] : q[i] - q[a]];  // anchors: own alphabet
            ++h_prev[i == 0 ? (int64_t(1) << 40) + q[i] : q[i] - q[i - 1]];
          }
          direct += entropy_bits(h_direct, T);
          anchor += entropy_bits(h_anchor, T);
          previous += entropy_bits(h_prev, T);
          r.values += T;
        }
      }
    r.table_bits = table / double(r.values);
    r.direct_bits = direct / double(r.values);
    r.anchor_bits = anchor / double(r.values);
    r.previous_bits = previous / double(r.values);
    rows.push_back(r);
  }
  return rows;
}

}  // namespace kvstream::codec
