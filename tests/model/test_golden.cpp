// The reference model against llama2.c run.c's own outputs (golden.json): greedy generations,
// logits, K/V rows and teacher-forced log-probs on the real stories260K weights.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "codec/rope.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "tests/test_data.h"

using namespace kvstream;
using namespace kvstream::model;
using nlohmann::json;

namespace {
const json& golden() {
  static const json g = [] {
    std::ifstream in(kvstream::testing::golden_path());
    REQUIRE(in);
    return json::parse(in);
  }();
  return g;
}
const Model& stories() {
  static const Model m = Model::load(kvstream::testing::model_path());
  return m;
}
const Tokenizer& tok() {
  static const Tokenizer t = Tokenizer::load(kvstream::testing::tokenizer_path());
  return t;
}
std::vector<int32_t> ids(const json& j) { return j.get<std::vector<int32_t>>(); }
}  // namespace

TEST_CASE("model config matches the stories260K header", "[model][golden]") {
  const Config& c = stories().config();
  const json& gm = golden()["model"];
  CHECK(c.dim == gm["dim"].get<int>());
  CHECK(c.hidden_dim == gm["hidden_dim"].get<int>());
  CHECK(c.n_layers == gm["n_layers"].get<int>());
  CHECK(c.n_heads == gm["n_heads"].get<int>());
  CHECK(c.n_kv_heads == gm["n_kv_heads"].get<int>());
  CHECK(c.vocab_size == gm["vocab_size"].get<int>());
  CHECK(c.seq_len == gm["seq_len"].get<int>());
  CHECK(c.head_dim() == gm["head_size"].get<int>());
  CHECK(c.kv_dim() == gm["kv_dim"].get<int>());
  CHECK(c.shared_classifier);
  CHECK(stories().name() == "stories260K");
}

TEST_CASE("tokenizer encodes every golden prompt exactly as run.c", "[model][golden][tokenizer]") {
  for (auto& [prompt, entry] : golden()["prompts"].items()) {
    INFO("prompt: '" << prompt << "'");
    CHECK(tok().encode(prompt, true, false) == ids(entry["prompt_ids"]));
  }
  CHECK(tok().encode(golden()["teacher_forced_logprobs"]["text"].get<std::string>()) ==
        ids(golden()["teacher_forced_logprobs"]["token_ids"]));
}

TEST_CASE("greedy generation reproduces run.c token ids and text", "[model][golden]") {
  for (auto& [prompt, entry] : golden()["prompts"].items()) {
    INFO("prompt: '" << prompt << "'");
    const auto prompt_ids = ids(entry["prompt_ids"]);
    const GenerateResult r = stories().generate(prompt_ids, 64, 0.0f);
    CHECK(r.num_prompt == prompt_ids.size());
    CHECK(r.generated() == ids(entry["generated_ids"]));
    CHECK(r.stopped_on_bos == entry["stopped_on_bos"].get<bool>());
    // run.c prints the pieces after BOS then a newline.
    CHECK(tok().detokenize(r.tokens) + "\n" == entry["text"].get<std::string>());
  }
}

TEST_CASE("logits match run.c within 1e-4", "[model][golden]") {
  const json& g = golden()["logits"];
  KvCache kv = stories().new_cache();
  const auto prompt_ids = ids(g["prompt_ids"]);
  // Prefill the prompt batched, then step through the greedy tokens.
  std::vector<float> lg = stories().prefill(kv, prompt_ids);
  double worst = 0;
  for (const json& e : g["entries"]) {
    const int pos = e["pos"].get<int>();
    if (pos >= int(prompt_ids.size())) lg = stories().step(kv, e["input_token"].get<int32_t>());
    REQUIRE(kv.num_tokens() == size_t(pos + 1));
    const auto want = e["values"].get<std::vector<float>>();
    REQUIRE(want.size() == lg.size());
    for (size_t i = 0; i < want.size(); ++i) worst = std::max(worst, double(std::fabs(want[i] - lg[i])));
    CHECK(std::max_element(lg.begin(), lg.end()) - lg.begin() == e["argmax"].get<int>());
  }
  INFO("max |logit - golden| = " << worst);
  CHECK(worst <= 1e-4);
}

TEST_CASE("K/V rows match run.c's cache within 1e-4 (keys post-RoPE)", "[model][golden]") {
  const json& g = golden()["kv"];
  for (bool pre : {false, true}) {
    KvCache kv = stories().new_cache(pre);
    stories().prefill(kv, ids(g["prompt_ids"]), LogitsMode::None);
    if (pre) rope_apply_to_keys(kv, 0);
    double worst = 0;
    for (const json& e : g["entries"]) {
      const int l = e["layer"].get<int>(), pos = e["pos"].get<int>();
      CHECK(kv.tokens[pos] == e["token"].get<int32_t>());
      const auto key = e["key"].get<std::vector<float>>(), value = e["value"].get<std::vector<float>>();
      for (int i = 0; i < kv.shape.kv_dim(); ++i) {
        worst = std::max(worst, double(std::fabs(kv.k_row(l, pos)[i] - key[i])));
        worst = std::max(worst, double(std::fabs(kv.v_row(l, pos)[i] - value[i])));
      }
    }
    INFO("pre-RoPE export: " << pre << ", max |kv - golden| = " << worst);
    CHECK(worst <= 1e-4);
  }
}

TEST_CASE("teacher-forced log-probs match run.c within 1e-4", "[model][golden]") {
  const json& g = golden()["teacher_forced_logprobs"];
  const auto token_ids = ids(g["token_ids"]);
  const ScoreResult r = stories().score(stories().new_cache(), token_ids);
  const auto want = g["logprobs"].get<std::vector<double>>();
  REQUIRE(r.count() == want.size());
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::fabs(r.logprob[i] - want[i]));
  INFO("max |logprob - golden| = " << worst);
  CHECK(worst <= 1e-4);
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("position " << i);
    CHECK(std::fabs(r.logprob[i] - want[i]) <= 1e-4);
    CHECK(r.top1[i] == g["per_token"][i]["argmax"].get<int32_t>());
  }
  CHECK(std::fabs(r.sum_logprob - g["sum"].get<double>()) <= 1e-4);
  CHECK(r.perplexity == Approx(std::exp(-g["sum"].get<double>() / want.size())).epsilon(1e-4));
}
