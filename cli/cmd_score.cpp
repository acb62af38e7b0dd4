// `kvstream score`: log-probability and perplexity of a continuation text given a KV cache file.
// Every continuation token is scored (the KV's last token is re-fed to get the first prediction).
// Example: kvstream score --model data/models/stories260K/stories260K.bin
//            --tokenizer data/models/stories260K/tok512.bin --kv kv.safetensors --text " The end."
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/command_registry.h"
#include "cli/model_args.h"
#include "codec/safetensors.h"
#include "model/model.h"

namespace {
struct ScoreOptions {
  std::string model, tokenizer, kv, text;
  bool json = false;
};
}  // namespace

KVSTREAM_COMMAND("score", "Score a continuation text given a KV cache file (log-probs, perplexity)", [](CLI::App& sub) {
  auto o = std::make_shared<ScoreOptions>();
  kvstream::cli::add_model_args(sub, o->model, o->tokenizer);
  sub.add_option("--kv", o->kv, "KV cache .safetensors file (the context)")->required();
  sub.add_option("--text", o->text, "continuation text (encoded without BOS, with run.c's dummy space prefix)")->required();
  sub.add_flag("--json", o->json, "print JSON");
  return kvstream::cli::Action([o] {
    using namespace kvstream::model;
    const auto [m, tok] = kvstream::cli::load_model(o->model, o->tokenizer);
    const kvstream::KvCache kv = kvstream::read_safetensors(o->kv);
    const auto cont = tok.encode(o->text, false, false);
    const ScoreResult r = m.score_continuation(kv, cont);
    if (o->json) {
      nlohmann::json j = {{"context_tokens", kv.num_tokens()}, {"tokens", r.count()},
                          {"sum_logprob", r.sum_logprob},      {"perplexity", r.perplexity}};
      for (size_t i = 0; i < r.count(); ++i)
        j["per_token"].push_back({{"id", cont[i]}, {"piece", tok.piece(cont[i])}, {"logprob", r.logprob[i]},
                                  {"top1", r.top1[i]}, {"top1_piece", tok.piece(r.top1[i])}});
      std::cout << j.dump(2) << "\n";
      return 0;
    }
    std::printf("context: %zu tokens from %s\n", kv.num_tokens(), o->kv.c_str());
    for (size_t i = 0; i < r.count(); ++i)
      std::printf("  %4zu  %-14s logprob %9.4f   top-1 %s\n", i, ("'" + tok.piece(cont[i]) + "'").c_str(),
                  r.logprob[i], ("'" + tok.piece(r.top1[i]) + "'").c_str());
    std::printf("continuation: %zu tokens, total logprob %.4f, mean %.4f, perplexity %.3f\n", r.count(),
                r.sum_logprob, r.count() ? r.sum_logprob / double(r.count()) : 0.0, r.perplexity);
    return 0;
  });
});
