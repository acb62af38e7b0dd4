// `kvstream profile`: runs the model on calibration text and writes a codec profile (per-lane
// means, steps, rANS tables and the measured level ladder). Logic lives in model/kv_quality.
// `kvstream profile --kv FILE...` builds a model-free one from KV dumps alone (codec/kv_profile.h).
#include <iostream>

#include "cli/command_registry.h"
#include "cli/model_args.h"
#include "codec/kv_profile.h"
#include "codec/safetensors.h"
#include "cli/progress.h"
#include "model/kv_quality.h"

namespace {
// profile --kv: no model, levels by reconstruction SNR or bits per value (codec/kv_profile.h).
kvstream::codec::Profile kv_only_profile(const std::vector<std::string>& files, kvstream::codec::KvProfileOptions o) {
  std::vector<kvstream::KvCache> dumps;
  for (const auto& f : files) dumps.push_back(kvstream::read_safetensors(f));
  return kvstream::codec::build_kv_profile(dumps, o);
}
}  // namespace

KVSTREAM_COMMAND("profile", "Build a codec profile (tables, steps, level ladder) from calibration text",
                 ([](CLI::App& sub) -> kvstream::cli::Action {
  struct Opts {
    std::string model, tokenizer, text, out;
    kvstream::model::ProfileOptions p;
    std::vector<std::string> kv;
    kvstream::codec::KvProfileOptions kvp;
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
  sub.add_option("--weighting", o->p.weighting,
                 "per-lane steps: sensitivity (measured through the model), rms or uniform (with --kv: rms)");
  sub.add_flag("!--no-token-table", o->p.token_table,
               "quantize layer 0 like the others instead of sending token ids for it (profile format 1)");
  sub.add_option("--margin-z", o->p.margin_z, "ladder margin: z of the standard error a level must clear its target by");
  sub.add_option("--min-weight", o->p.min_weight, "floor of a lane's sensitivity weight (largest step = base / floor)");
  sub.add_flag("--verbose", o->p.verbose, "log every stage and candidate on stderr");
  sub.add_option("-o,--output", o->out, "profile file to write")->required();
  auto* kv = sub.add_option("--kv", o->kv,
                            "KV dumps (safetensors) to build a model-free profile from, instead of --model, "
                            "--tokenizer and --text-file: per-lane rms or uniform steps, levels by reconstruction "
                            "SNR (no model quality measured; `kvstream eval` can)")->check(CLI::ExistingFile);
  kv->description(kv->get_description() + " (default: none)");
  for (const char* name : {"--model", "--tokenizer", "--text-file"}) {
    CLI::Option* opt = sub.get_option(name);
    opt->required(false)->description(opt->get_description() + "; required unless --kv (default: none)");
    kv->excludes(opt);
  }
  sub.add_option("--snr-db", o->kvp.snr_db, "--kv: level targets, reconstruction SNR in dB (best first)")
      ->capture_default_str()->delimiter(',');
  sub.add_option("--bits", o->kvp.bits, "--kv: level targets in bits per value instead of --snr-db (default: none)")
      ->delimiter(',');
  return [o, app = &sub] {
    if (!o->kv.empty()) {
      o->kvp.weighting = app->count("--weighting") ? o->p.weighting : "rms";
      o->kvp.scale_bits = o->p.scale_bits;
      o->kvp.chunk_tokens = o->p.chunk_tokens;
      o->kvp.threads = o->p.threads;
      const auto p = kv_only_profile(o->kv, o->kvp);
      kvstream::codec::save_profile(p, o->out);
      std::cout << "profile " << o->out << " hash " << std::hex << p.hash() << std::dec << " (model-free, from "
                << o->kv.size() << " KV dump(s), " << o->kvp.weighting << " weighting)\n";
      const auto& lv = p.provenance["kv_profile"]["levels"];
      for (size_t i = 0; i < p.levels.size(); ++i)
        std::cout << "  " << p.levels[i].name << ": " << p.levels[i].quality.bits_per_value << " bits/value, "
                  << p.levels[i].quality.ratio_vs_q8 << "x smaller than q8, reconstruction SNR "
                  << lv[i]["snr_db"].get<double>() << " dB\n";
      return 0;
    }
    if (o->model.empty() || o->tokenizer.empty() || o->text.empty())
      throw CLI::RequiredError("--model, --tokenizer and --text-file (or --kv)");
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
