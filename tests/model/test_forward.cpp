// Properties of the forward pass on the real stories260K weights and TinyStories text: batched
// prefill equals token-by-token, chunked recompute equals one-shot prefill, pre-RoPE export equals
// post-RoPE after rope_apply, score() agrees with prefill logits and leaves the cache alone, bad
// input is rejected, and one Model serves many threads.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>

#include "codec/rope.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "tests/test_data.h"

using namespace kvstream;
using namespace kvstream::model;

namespace {
const Model& stories() {
  static const Model m = Model::load(kvstream::testing::model_path());
  return m;
}
const Tokenizer& tok() {
  static const Tokenizer t = Tokenizer::load(kvstream::testing::tokenizer_path());
  return t;
}
// The first `n` tokens of the TinyStories validation text (BOS first).
std::vector<int32_t> passage(size_t n) {
  std::ifstream in(kvstream::testing::text_path());
  REQUIRE(in);
  std::string text(64 * 1024, '\0');
  in.read(text.data(), text.size());
  text.resize(in.gcount());
  auto ids = tok().encode(text);
  REQUIRE(ids.size() >= n);
  ids.resize(n);
  return ids;
}
void require_same_cache(const KvCache& a, const KvCache& b) {
  REQUIRE(a.num_tokens() == b.num_tokens());
  REQUIRE(a.tokens == b.tokens);
  REQUIRE(a.keys_pre_rope == b.keys_pre_rope);
  for (int l = 0; l < a.shape.n_layers; ++l) {
    INFO("layer " << l);
    REQUIRE(a.k[l] == b.k[l]);
    REQUIRE(a.v[l] == b.v[l]);
  }
}
double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}
}  // namespace

TEST_CASE("batched prefill equals token-by-token steps", "[model]") {
  const auto ids = passage(200);
  for (bool pre : {false, true}) {
    INFO("pre-RoPE cache: " << pre);
    KvCache batched = stories().new_cache(pre), stepwise = stories().new_cache(pre);
    const auto all = stories().prefill(batched, ids, LogitsMode::All);
    REQUIRE(all.size() == ids.size() * 512);
    double worst = 0;
    for (size_t t = 0; t < ids.size(); ++t) {
      const auto lg = stories().step(stepwise, ids[t]);
      worst = std::max(worst, max_abs_diff(lg, std::vector<float>(all.begin() + t * 512, all.begin() + (t + 1) * 512)));
    }
    CHECK(worst <= 1e-5);
    CHECK(worst == 0.0);  // same kernels in the same order: bit-identical
    require_same_cache(batched, stepwise);
  }
}

TEST_CASE("chunked recompute equals one-shot prefill, Last equals the last row of All", "[model]") {
  const auto ids = passage(300);
  KvCache one = stories().new_cache();
  const auto all = stories().prefill(one, ids, LogitsMode::All);
  KvCache chunked = stories().new_cache();
  stories().recompute(chunked, std::span(ids).subspan(0, 97));
  stories().recompute(chunked, std::span(ids).subspan(97, 100));
  const auto last = stories().prefill(chunked, std::span(ids).subspan(197));
  require_same_cache(one, chunked);
  CHECK(last == std::vector<float>(all.end() - 512, all.end()));
  // A chunk recomputed on top of a decoded (sliced) prefix equals the original rows.
  KvCache prefix = one.slice(0, 150);
  stories().recompute(prefix, std::span(ids).subspan(150));
  require_same_cache(one, prefix);
}

TEST_CASE("pre-RoPE export plus rope_apply equals post-RoPE keys", "[model]") {
  const auto ids = passage(256);
  KvCache post = stories().new_cache(false), pre = stories().new_cache(true);
  const auto lp = stories().prefill(post, ids);
  const auto lq = stories().prefill(pre, ids);
  CHECK(lp == lq);  // attention rotates pre-RoPE keys on the fly, exactly
  CHECK(pre.v == post.v);
  KvCache rotated = pre;
  rope_apply_to_keys(rotated, 0);
  CHECK_FALSE(rotated.keys_pre_rope);
  require_same_cache(rotated, post);  // codec/rope.h and the model compute the same floats
  // And the other way within float rounding.
  KvCache unrotated = post;
  rope_remove_from_keys(unrotated, 0);
  double worst = 0;
  for (int l = 0; l < 5; ++l) worst = std::max(worst, max_abs_diff(unrotated.k[l], pre.k[l]));
  CHECK(worst < 1e-5);
  // Continuing from a pre-RoPE cache gives the same logits as from the post-RoPE one.
  CHECK(stories().step(pre, 13) == stories().step(post, 13));
}

TEST_CASE("next_logits equals step bit for bit and leaves the cache untouched", "[model]") {
  const auto ids = passage(200);
  for (bool pre_rope : {false, true}) {
    KvCache kv = stories().new_cache(pre_rope);
    stories().prefill(kv, ids, LogitsMode::None);
    const KvCache before = kv;
    const auto fast = stories().next_logits(kv, 13);
    require_same_cache(kv, before);
    KvCache stepped = kv;
    CHECK(fast == stories().step(stepped, 13));
  }
  KvCache kv = stories().new_cache(false);
  CHECK_THROWS_AS(stories().next_logits(kv, -1), std::invalid_argument);
}

TEST_CASE("score agrees with prefill logits and leaves the cache untouched", "[model]") {
  const auto ids = passage(320);
  const size_t ctx = 256;
  KvCache kv = stories().new_cache();
  stories().prefill(kv, std::span(ids).subspan(0, ctx), LogitsMode::None);
  const KvCache before = kv;
  const auto cont = std::span(ids).subspan(ctx);
  const ScoreResult r = stories().score(kv, cont);
  require_same_cache(kv, before);
  REQUIRE(r.count() == cont.size() - 1);
  // Reference: logits of every continuation position via prefill on a copy.
  KvCache copy = kv;
  const auto all = stories().prefill(copy, cont, LogitsMode::All);
  double sum = 0;
  for (size_t i = 0; i + 1 < cont.size(); ++i) {
    const float* lg = all.data() + i * 512;
    double mx = lg[0];
    int best = 0;
    for (int j = 1; j < 512; ++j)
      if (lg[j] > lg[best]) best = j;
    mx = lg[best];
    double z = 0;
    for (int j = 0; j < 512; ++j) z += std::exp(double(lg[j]) - mx);
    const double lp = double(lg[cont[i + 1]]) - mx - std::log(z);
    CHECK(r.logprob[i] == Approx(lp).margin(1e-9));
    CHECK(r.top1[i] == best);
    sum += lp;
  }
  CHECK(r.sum_logprob == Approx(sum).margin(1e-6));
  CHECK(r.perplexity == Approx(std::exp(-sum / r.count())));
  CHECK(r.perplexity > 1.0);
  CHECK(r.perplexity < 30.0);  // in-domain text for a trained model
  // Scoring the whole sequence from an empty cache gives the same tail log-probs.
  const ScoreResult full = stories().score(stories().new_cache(), ids);
  for (size_t i = 0; i < r.count(); ++i) CHECK(full.logprob[ctx + i] == Approx(r.logprob[i]).margin(1e-9));
  CHECK(top1_agreement(r, r) == 1.0);
  // score_continuation scores every continuation token, including the first.
  const ScoreResult sc = stories().score_continuation(kv, cont);
  REQUIRE(sc.count() == cont.size());
  for (size_t i = 0; i < sc.count(); ++i) CHECK(sc.logprob[i] == Approx(full.logprob[ctx - 1 + i]).margin(1e-9));
  CHECK_THROWS_AS(stories().score_continuation(stories().new_cache(), cont), std::invalid_argument);
  // A pre-RoPE context scores identically.
  KvCache pre = kv;
  rope_remove_from_keys(pre, 0);
  const ScoreResult rp = stories().score(pre, cont);
  for (size_t i = 0; i < r.count(); ++i) CHECK(rp.logprob[i] == Approx(r.logprob[i]).margin(1e-5));
  // Damaged context: scores get worse, agreement drops below 1.
  KvCache noisy = kv;
  for (auto& layer : noisy.v)
    for (float& x : layer) x = -x;
  const ScoreResult rn = stories().score(noisy, cont);
  CHECK(rn.perplexity > r.perplexity);
  CHECK(top1_agreement(r, rn) < 1.0);
}

TEST_CASE("bad model input is rejected without touching the cache", "[model]") {
  KvCache kv = stories().new_cache();
  stories().prefill(kv, std::vector<int32_t>{1, 403, 407});
  const KvCache before = kv;
  CHECK_THROWS_WITH(stories().prefill(kv, std::vector<int32_t>{5, 512}), Catch::Contains("outside the vocabulary"));
  CHECK_THROWS_AS(stories().step(kv, -1), std::invalid_argument);
  CHECK_THROWS_AS(stories().score(kv, std::vector<int32_t>{5, 9999}), std::invalid_argument);
  require_same_cache(kv, before);
  KvCache wrong(KvShape{5, 2, 8});
  CHECK_THROWS_WITH(stories().prefill(wrong, std::vector<int32_t>{1}), Catch::Contains("does not match"));
  KvCache broken = kv;
  broken.v[3].pop_back();
  CHECK_THROWS_AS(stories().score(broken, std::vector<int32_t>{1, 2}), std::invalid_argument);
  KvCache theta = kv;
  theta.rope_theta = 500000.0f;
  CHECK_THROWS_WITH(stories().step(theta, 1), Catch::Contains("rope_theta"));
  CHECK_THROWS_AS(stories().generate(std::vector<int32_t>{}, 10), std::invalid_argument);
  CHECK(stories().prefill(kv, std::vector<int32_t>{}).empty());
  CHECK(stories().score(kv, std::vector<int32_t>{7}).count() == 0);
}

TEST_CASE("one model scores from many threads at once", "[model]") {
  const auto ids = passage(160);
  KvCache kv = stories().new_cache();
  stories().prefill(kv, std::span(ids).subspan(0, 100), LogitsMode::None);
  const ScoreResult want = stories().score(kv, std::span(ids).subspan(100));
  std::vector<ScoreResult> got(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] {
      for (int rep = 0; rep < 3; ++rep) got[i] = stories().score(kv, std::span(ids).subspan(100));
    });
  for (auto& t : threads) t.join();
  for (const auto& g : got) {
    CHECK(g.logprob == want.logprob);
    CHECK(g.top1 == want.top1);
  }
}

TEST_CASE("temperature sampling is seeded and deterministic", "[model]") {
  const auto prompt = tok().encode("Once upon a time");
  const auto a = stories().generate(prompt, 80, 0.9f, 1234);
  const auto b = stories().generate(prompt, 80, 0.9f, 1234);
  const auto c = stories().generate(prompt, 80, 0.9f, 99);
  CHECK(a.tokens == b.tokens);
  CHECK(a.tokens != c.tokens);
  CHECK(a.num_prompt == prompt.size());
  if (!a.stopped_on_bos) CHECK(a.tokens.size() == 81);
  for (int32_t t : a.tokens) CHECK((t >= 0 && t < 512));
  // steps beyond seq_len clamp to seq_len (run.c); plain multinomial when topp >= 1.
  CHECK(stories().generate(prompt, 100000, 0.0f).tokens.size() <= 513);
  CHECK(stories().generate(prompt, 20, 1.0f, 7, 1.0f).tokens.size() <= 21);
  // A prompt longer than steps: run.c only walks the prompt.
  CHECK(stories().generate(prompt, 3, 0.0f).tokens == std::vector<int32_t>(prompt.begin(), prompt.begin() + 4));
}

TEST_CASE("generate_from continues a KV cache exactly like generate continues its prompt", "[model]") {
  const auto prompt = tok().encode("Lily and Tom went to the park.");
  const auto whole = stories().generate(prompt, 64, 0.0f);
  for (bool pre : {false, true}) {
    KvCache kv = stories().new_cache(pre);
    stories().recompute(kv, prompt);
    const auto cont = stories().generate_from(kv, 64 - int(prompt.size()) + 1, 0.0f);
    CHECK(cont.num_prompt == prompt.size());
    CHECK(cont.tokens == whole.tokens);
  }
  KvCache kv = stories().new_cache();
  CHECK_THROWS_AS(stories().generate_from(kv, 5), std::invalid_argument);
  stories().recompute(kv, passage(510));
  CHECK(stories().generate_from(kv, 50).tokens.size() <= 513);  // stops at seq_len
}
