// `kvstream generate`: text generation with the reference model, printing exactly what llama2.c
// run.c prints (the prompt's pieces after BOS, then the generated pieces, then a newline).
// With --kv FILE it instead continues the text held in a KV cache file and prints only the new text.
// Example: kvstream generate --model data/models/stories260K/stories260K.bin
//            --tokenizer data/models/stories260K/tok512.bin --prompt "Once upon a time" --steps 64
//          kvstream generate --model ... --tokenizer ... --kv kv.safetensors --steps 64
#include <iostream>
#include <memory>

#include "cli/command_registry.h"
#include "cli/model_args.h"
#include "codec/safetensors.h"
#include "model/model.h"

namespace {
struct GenerateOptions {
  std::string model, tokenizer, prompt, kv;
  int steps = 256;
  float temperature = 0.0f, topp = 0.9f;
  uint64_t seed = 42;
};
}  // namespace

KVSTREAM_COMMAND("generate", "Generate text with the reference model (llama2.c run.c output)", [](CLI::App& sub) {
  auto o = std::make_shared<GenerateOptions>();
  kvstream::cli::add_model_args(sub, o->model, o->tokenizer);
  auto* prompt = sub.add_option("--prompt", o->prompt, "prompt text (default: none, generate after BOS alone)");
  sub.add_option("--kv", o->kv, "continue the text of this KV cache file instead of a prompt (default: none)")->excludes(prompt);
  sub.add_option("--steps", o->steps, "positions to run, prompt included (0 = seq_len); with --kv: new tokens")->capture_default_str();
  sub.add_option("--temperature", o->temperature, "0 = greedy argmax")->capture_default_str();
  sub.add_option("--topp", o->topp, "nucleus sampling threshold (as run.c -p)")->capture_default_str();
  sub.add_option("--seed", o->seed, "RNG seed for temperature > 0")->capture_default_str();
  return kvstream::cli::Action([o] {
    using namespace kvstream::model;
    const auto [m, tok] = kvstream::cli::load_model(o->model, o->tokenizer);
    if (!o->kv.empty()) {
      const GenerateResult r = m.generate_from(kvstream::read_safetensors(o->kv), o->steps, o->temperature, o->seed, o->topp);
      const auto all = r.tokens;
      std::string text;
      for (size_t i = r.num_prompt; i < all.size(); ++i) text += tok.printable(all[i - 1], all[i]);
      std::cout << text << "\n";
      return 0;
    }
    const GenerateResult r = m.generate(tok.encode(o->prompt), o->steps, o->temperature, o->seed, o->topp);
    std::cout << tok.detokenize(r.tokens) << "\n";
    return 0;
  });
});
