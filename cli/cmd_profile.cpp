// `kvstream profile`: runs the model on calibration text and writes a codec profile (per-lane
// means, steps, rANS tables and the measured level ladder). Logic lives in model/kv_quality.
#include <iostream>

#include "cli/command_registry.h"
#include "cli/model_args.h"
#include "cli/progress.h"
#include "model/kv_quality.h"

KVSTREAM_COMMAND("profile", "Build a codec profile (tables, steps, level ladder) from calibration text",
                 ([](CLI::App& sub) -> kvstream::cli::Action {
  struct Opts {
    std::string model, tokenizer, text, out;
    kvstream::model::ProfileOptions p;
  };
  auto o = std::make_shared<Opts>();
  kvstream::cli::add_model_args(sub, o->model, o->tokenizer);
  sub.add_option("--text-file", o->text, "any text; calibration uses only its first 35%, contexts starting at a blank line, else a line break, else a space")->required();
  sub.add_option("--contexts", o->p.calibration_contexts, "calibration contexts for tables");
  sub.add_option("--selection-contexts", o->p.selection_contexts, "contexts for sensitivities and ladder quality");
  sub.add_option("--context-tokens", o->p.context_tokens, "tokens per context, BOS included");
  sub.add_option("--continuation-tokens", o->p.continuation_tokens, "tokens scored after each context");
  sub.add_option("--chunk-tokens", o->p.chunk_tokens, "tokens per codec chunk");
  sub.add_option("--scale-bits", o->p.scale_bits, "rANS table precision (<= 12)");
  sub.add_option("--threads", o->p.threads, "0 = all cores");
  sub.add_option("--weighting", o->p.weighting, "per-lane steps: sensitivity (measured through the model), rms or uniform");
  sub.add_flag("!--no-token-table", o->p.token_table,
               "quantize layer 0 like the others instead of sending token ids for it (profile format 1)");
  sub.add_option("--margin-z", o->p.margin_z, "ladder margin: z of the standard error a level must clear its target by");
  sub.add_option("--min-weight", o->p.min_weight, "floor of a lane's sensitivity weight (largest step = base / floor)");
  sub.add_flag("--verbose", o->p.verbose, "log every stage and candidate on stderr");
  sub.add_option("-o,--output", o->out, "profile file to write")->required();
  return [o] {
    const auto [m, tok] = kvstream::cli::load_model(o->model, o->tokenizer);
    kvstream::cli::Progress progress("profile", !o->p.verbose);
    o->p.text_name = o->text;
    o->p.progress = progress.fn();
    const auto p = kvstream::model::build_profile(m, tok, kvstream::model::read_text_file(o->text), o->p);
    progress.finish();
    kvstream::codec::save_profile(p, o->out);
    std::cout << "profile " << o->out << " hash " << std::hex << p.hash() << std::dec << "\n";
    for (const auto& L : p.levels)
      std::cout << "  " << L.name << ": " << L.quality.bits_per_value << " bits/value, "
                << L.quality.ratio_vs_q8 << "x smaller than q8, ppl " << L.quality.ppl_delta_pct
                << "%, top-1 " << L.quality.greedy_agreement << "\n";
    return 0;
  };
}));
