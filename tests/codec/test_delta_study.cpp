// The anchor/delta study (bench/delta_study.h): it sees token locality where there is some
// (a ramp codes to ~0 bits with previous-token deltas) and, on real stories260K KV, reports what
// RESULTS.md says: anchor deltas cost more than direct coding.
#include <catch2/catch.hpp>

#include "bench/delta_study.h"
#include "codec/rope.h"
#include "codec_fixture.h"

using namespace kvstream;
using namespace kvstream::codec;
using kvstream::testing::real_kv;
using kvstream::testing::test_profile;

TEST_CASE("delta study: a ramp is cheap as previous-token deltas, real KV is not", "[codec][delta]") {
  const Profile& p = test_profile();
  KvCache ramp = real_kv();
  if (!ramp.keys_pre_rope) rope_remove_from_keys(ramp, 0);
  const size_t d = size_t(ramp.shape.kv_dim());
  for (int l = 0; l < ramp.shape.n_layers; ++l)
    for (int kind = 0; kind < 2; ++kind) {
      auto& x = kind == 0 ? ramp.k[size_t(l)] : ramp.v[size_t(l)];
      for (size_t i = 0; i < x.size(); ++i) {
        const size_t lane = size_t(lane_of(p.shape, l, Kind(kind), int(i % d)));
        x[i] = p.mean[lane] + p.levels[0].step[lane] * float((i / d) % 40);
      }
    }
  const auto r = delta_study(ramp, p, 10);
  REQUIRE(r.size() == p.levels.size());
  CHECK(r[0].values == ramp.num_tokens() * size_t(ramp.values_per_token()));
  CHECK(r[0].direct_bits > 4.5);          // ~40 equally likely values per lane
  CHECK(r[0].previous_bits < 0.5);        // +1 every token, a wrap every 40
  CHECK(r[0].anchor_bits < r[0].direct_bits);
  for (const auto& row : delta_study(real_kv(), p, 10)) {
    INFO(row.level << ": table " << row.table_bits << " direct " << row.direct_bits << " anchor " << row.anchor_bits);
    CHECK(row.direct_bits <= row.table_bits + 1e-9);  // an oracle per-lane table never loses
    CHECK(row.anchor_bits > row.direct_bits);
  }
  CHECK_THROWS_AS(delta_study(real_kv(), p, 1), std::invalid_argument);
}
