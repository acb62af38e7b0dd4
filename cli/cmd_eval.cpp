// `kvstream eval`: quality of every ladder level and baseline on held-out contexts (model/kv_quality).
#include <iomanip>
#include <iostream>

#include "cli/command_registry.h"
#include "cli/model_args.h"
#include "cli/progress.h"
#include "model/kv_quality.h"

KVSTREAM_COMMAND("eval", "Measure perplexity change and top-1 agreement of every codec level and baseline",
                 ([](CLI::App& sub) -> kvstream::cli::Action {
  struct Opts {
    std::string model, tokenizer, profile, text;
    kvstream::model::EvalOptions e;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  kvstream::cli::add_model_args(sub, o->model, o->tokenizer);
  sub.add_option("--profile", o->profile, "codec profile (.kvprofile) to evaluate")->required();
  sub.add_option("--text-file", o->text, "any text: contexts come from its last half (never calibration text), each starting at a blank line, else a line break, else a space")->required();
  sub.add_option("--contexts", o->e.contexts, "contexts, spread evenly over the text range");
  sub.add_option("--context-tokens", o->e.context_tokens, "tokens per context, BOS included");
  sub.add_option("--continuation-tokens", o->e.continuation_tokens, "tokens scored after each context");
  sub.add_option("--chunk-tokens", o->e.chunk_tokens, "tokens per codec chunk");
  sub.add_option("--threads", o->e.threads, "threads (0 = all cores)");
  sub.add_option("--text-begin", o->e.range.begin_frac, "contexts from this fraction of the text on (calibration uses < 0.35)");
  sub.add_option("--text-end", o->e.range.end_frac, "contexts up to this fraction of the text");
  sub.add_flag("--json", o->json, "print JSON instead of the table (no progress)");
  return [o] {
    const auto [m, tok] = kvstream::cli::load_model(o->model, o->tokenizer);
    const auto p = kvstream::codec::load_profile(o->profile);
    kvstream::cli::Progress progress("eval", !o->json);
    o->e.text_name = o->text;
    o->e.progress = progress.fn();
    const auto rep = kvstream::model::evaluate_codec(m, tok, p, kvstream::model::read_text_file(o->text), o->e);
    progress.finish();
    if (o->json) {
      nlohmann::json j = {{"contexts", rep.contexts}, {"context_tokens", o->e.context_tokens},
                          {"continuation_tokens", o->e.continuation_tokens}, {"chunk_tokens", o->e.chunk_tokens},
                          {"entries", nlohmann::json::array()}};
      for (const auto& e : rep.entries)
        j["entries"].push_back({{"name", e.name}, {"kind", e.kind}, {"bits_per_value", e.q.bits_per_value},
                                {"ratio_vs_q8", e.ratio_vs_q8}, {"ppl_delta_pct", e.q.ppl_delta_pct},
                                {"greedy_agreement", e.q.greedy_agreement}});
      std::cout << j.dump(2) << "\n";
      return 0;
    }
    std::cout << "contexts " << rep.contexts << " (" << o->e.context_tokens << " + " << o->e.continuation_tokens
              << " tokens)\n";
    std::cout << std::left << std::setw(15) << "name" << std::setw(10) << "kind" << std::right << std::setw(10)
              << "bits/val" << std::setw(10) << "vs q8" << std::setw(12) << "ppl d%" << std::setw(10) << "top-1\n";
    for (const auto& e : rep.entries)
      std::cout << std::left << std::setw(15) << e.name << std::setw(10) << e.kind << std::right << std::fixed
                << std::setprecision(3) << std::setw(10) << e.q.bits_per_value << std::setw(10) << e.ratio_vs_q8
                << std::setw(12) << e.q.ppl_delta_pct << std::setw(10) << e.q.greedy_agreement << "\n";
    return 0;
  };
}));
