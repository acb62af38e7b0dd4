// delta_study.h: does CacheGen's anchor/delta coding pay on a real KV cache at a profile's steps?
// Measures, per profile level, the bits per coded value of four ways to code the same quantized
// values q = round((x - mean) / step) (pre-RoPE keys; layer 0 skipped when the profile has a token
// table, since it is not coded then):
//   table_bits   -log2 p(q) under the profile's offline table (what kvstream ships; escapes
//                charged their escape-symbol cost plus 2 varint bytes),
//   direct       empirical entropy of q, one histogram per lane (an oracle per-lane table),
//   anchor       empirical entropy of q_t - q_anchor, anchor = first token of each group of
//                `group_tokens` tokens (anchors themselves coded directly): CacheGen's scheme,
//   previous     empirical entropy of q_t - q_{t-1} (first token coded directly).
// Empirical entropies use the same values as their histograms, so they are optimistic by about
// (symbols - 1) / (2 n ln 2) bits per lane; that bias is larger for the wider delta alphabets, so a
// delta scheme that loses here loses for real.
// Contract: throws std::invalid_argument on a shape mismatch or group_tokens < 2.
#pragma once
#include <string>
#include <vector>

#include "codec/kv_cache.h"
#include "codec/profile.h"

namespace kvstream::codec {

struct DeltaStudyRow {
  std::string level;
  size_t values = 0;  // coded values measured
  double table_bits = 0, direct_bits = 0, anchor_bits = 0, previous_bits = 0;  // bits per value
};
std::vector<DeltaStudyRow> delta_study(const KvCache& kv, const Profile& p, int group_tokens = 10);

}  // namespace kvstream::codec
