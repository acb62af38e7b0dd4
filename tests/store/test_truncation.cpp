// Decoupled positional encoding with the real stories260K model: truncating stored pre-RoPE keys
// and re-applying RoPE matches recomputing the kept text; naive truncation of post-RoPE keys does not.
#include <catch2/catch.hpp>

#include <cmath>

#include "codec/rope.h"
#include "model/kv_quality.h"
#include "store/truncation.h"
#include "tests/test_data.h"

using namespace kvstream;

TEST_CASE("truncate_context re-rotates stored pre-RoPE keys at their new positions", "[store][truncation]") {
  const auto m = model::Model::load(testing::model_path());
  const auto tok = model::Tokenizer::load(testing::tokenizer_path());
  const auto ids = tok.encode("Once upon a time, there was a little dog named Max. Max liked to run in the park.", true);
  KvCache pre = m.new_cache(true);
  m.recompute(pre, ids);
  KvCache post = m.new_cache(false);
  m.recompute(post, ids);
  const size_t drop = 7;
  const KvCache t = store::truncate_context(pre, drop);
  REQUIRE(t.num_tokens() == ids.size() - drop);
  CHECK_FALSE(t.keys_pre_rope);
  // Values are untouched; keys equal the post-RoPE keys the model itself makes for that text at
  // positions 0.. only up to the context they attended to, so compare against rotating the same
  // rows by hand: row r of t == pre row (r + drop) rotated for position r.
  KvCache manual = pre.slice(drop, pre.num_tokens());
  rope_apply_to_keys(manual, 0);
  CHECK(t.k == manual.k);
  CHECK(t.v == pre.slice(drop, pre.num_tokens()).v);
  // Layer 0 keys do not depend on context: they must equal a fresh post-RoPE prefill of the kept text.
  KvCache fresh = m.new_cache(false);
  m.recompute(fresh, std::span(ids).subspan(drop));
  double max_err = 0;
  for (size_t i = 0; i < t.k[0].size(); ++i) max_err = std::max<double>(max_err, std::fabs(t.k[0][i] - fresh.k[0][i]));
  CHECK(max_err < 1e-4);
  CHECK_THROWS_AS(store::truncate_context(post, 1), std::invalid_argument);
  CHECK_THROWS_AS(store::truncate_context(pre, ids.size() + 1), std::out_of_range);
}

TEST_CASE("truncation eval: re-RoPE tracks recompute, naive truncation breaks the model", "[store][truncation]") {
  const auto m = model::Model::load(testing::model_path());
  const auto tok = model::Tokenizer::load(testing::tokenizer_path());
  store::TruncationEvalOptions o;
  o.contexts = 3;
  const auto r = store::truncation_eval(m, tok, model::read_text_file(testing::text_path()), o);
  REQUIRE(r.rows.size() == 4);
  CHECK(r.dropped == 256);
  CHECK(r.context_tokens + r.next_tokens > size_t(r.window));
  const double a = r.rows[0].ppl, b = r.rows[1].ppl, c = r.rows[2].ppl;
  CHECK(std::isfinite(a));
  CHECK(std::fabs(a - b) < 0.1 * b);
  CHECK(r.rows[0].top1_agreement > 0.95);
  CHECK(c > 3 * b);
  CHECK(r.rows[2].top1_agreement < 0.5);
  o.context_tokens = 100;  // does not overflow the window
  CHECK_THROWS_AS(store::truncation_eval(m, tok, "", o), std::invalid_argument);
}
