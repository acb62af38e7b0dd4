// `kvstream bench model`: prefill speed of the reference model, batched vs token by token, measured
// side by side in one run (scripts/bench_model.sh writes its JSON to out/bench_model.json).
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/command_registry.h"
#include "cli/model_args.h"
#include "bench/model_bench.h"
#include "model/file_bytes.h"

namespace {
struct BenchModelOptions {
  std::string model, tokenizer, text_file;
  size_t tokens = 512;
  int repeats = 5;
  bool json = false;
};
}  // namespace

KVSTREAM_COMMAND("bench model", "Benchmark reference-model prefill: batched vs token by token", [](CLI::App& sub) {
  auto o = std::make_shared<BenchModelOptions>();
  kvstream::cli::add_model_args(sub, o->model, o->tokenizer);
  sub.add_option("--text-file", o->text_file, "text to take the context from (data/text/tinystories_val.txt)")->required();
  sub.add_option("--tokens", o->tokens, "context length")->capture_default_str();
  sub.add_option("--repeats", o->repeats, "timed repetitions (best kept)")->capture_default_str();
  sub.add_flag("--json", o->json, "print JSON");
  return kvstream::cli::Action([o] {
    using namespace kvstream::model;
    const auto [m, tok] = kvstream::cli::load_model(o->model, o->tokenizer);
    auto ids = tok.encode(read_text_file(o->text_file));
    if (ids.size() < o->tokens)
      throw std::invalid_argument(o->text_file + " has only " + std::to_string(ids.size()) + " tokens, fewer than --tokens " +
                                  std::to_string(o->tokens) + ": give a longer --text-file or fewer --tokens");
    ids.resize(o->tokens);
    const PrefillBench b = bench_prefill(m, ids, o->repeats);
    nlohmann::json j = {{"model", m.name()},
                        {"context_tokens", b.tokens},
                        {"repeats", b.repeats},
                        {"threads", 1},
                        {"batched", {{"seconds", b.batched_s}, {"tokens_per_s", b.batched_tok_s()}}},
                        {"token_by_token", {{"seconds", b.stepwise_s}, {"tokens_per_s", b.stepwise_tok_s()}}},
                        {"speedup", b.speedup()},
                        {"identical_kv", b.identical_kv},
                        {"score_continuation", {{"context_tokens", b.score_context},
                                                {"scored_tokens", b.score_tokens},
                                                {"seconds", b.score_s},
                                                {"calls_per_s", b.score_per_s()},
                                                {"perplexity", b.score_perplexity}}}};
    if (o->json) {
      std::cout << j.dump(2) << "\n";
      return 0;
    }
    std::printf("prefill %zu tokens (%s, 1 thread, best of %d):\n", b.tokens, m.name().c_str(), b.repeats);
    std::printf("  batched        %8.2f ms  %9.0f tok/s\n", b.batched_s * 1e3, b.batched_tok_s());
    std::printf("  token-by-token %8.2f ms  %9.0f tok/s\n", b.stepwise_s * 1e3, b.stepwise_tok_s());
    std::printf("  speedup        %8.2fx   (KV caches %s)\n", b.speedup(), b.identical_kv ? "bit-identical" : "DIFFER");
    std::printf("  score %zu tokens after %zu: %.2f ms (%.0f calls/s), perplexity %.3f\n", b.score_tokens,
                b.score_context, b.score_s * 1e3, b.score_per_s(), b.score_perplexity);
    return 0;
  });
});
