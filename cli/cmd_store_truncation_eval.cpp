// `kvstream store truncation-eval`: perplexity of a next turn after a context overflows the model
// window, with (a) stored pre-RoPE keys truncated and re-rotated, (b) recompute of the kept text,
// (c) naive truncation of post-RoPE keys, (d) no truncation. Logic: store/truncation.h.
// Example: kvstream store truncation-eval --model data/models/stories260K/stories260K.bin
//            --tokenizer data/models/stories260K/tok512.bin
//            --text-file data/text/tinystories_val.txt --contexts 32 --json
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/command_registry.h"
#include "cli/model_args.h"
#include "model/kv_quality.h"
#include "store/truncation.h"

KVSTREAM_COMMAND("store truncation-eval", "Perplexity after context overflow: re-RoPE vs recompute vs naive truncation",
                 ([](CLI::App& sub) {
  struct Opts {
    std::string model, tokenizer, text;
    kvstream::store::TruncationEvalOptions t;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  kvstream::cli::add_model_args(sub, o->model, o->tokenizer);
  sub.add_option("--text-file", o->text, "any text; contexts come from its last half (the evaluation range), cut as in eval")->required();
  sub.add_option("--contexts", o->t.contexts, "number of conversations");
  sub.add_option("--context-tokens", o->t.context_tokens, "context length before the next turn");
  sub.add_option("--next-tokens", o->t.next_tokens, "next-turn tokens scored");
  sub.add_option("--ratio", o->t.ratio, "fraction of the window dropped");
  sub.add_flag("--json", o->json, "print JSON");
  return kvstream::cli::Action([o] {
    using namespace kvstream;
    const auto [m, tok] = kvstream::cli::load_model(o->model, o->tokenizer);
    const auto r = store::truncation_eval(m, tok, model::read_text_file(o->text), o->t);
    if (o->json) {
      std::cout << r.to_json().dump(2) << "\n";
      return 0;
    }
    std::printf("%d contexts of %zu tokens + a %zu-token next turn; window %d; dropped oldest %zu, kept %zu\n",
                r.contexts, r.context_tokens, r.next_tokens, r.window, r.dropped, r.kept);
    std::printf("%-52s %10s %14s %10s\n", "method", "ppl", "|dppl| vs (b)", "top-1 =(b)");
    for (const auto& row : r.rows)
      std::printf("%-52s %10.4f %14.4f %10.3f\n", row.method.c_str(), row.ppl, row.mean_abs_ppl_diff, row.top1_agreement);
    return 0;
  });
}));
