// `kvstream prefill`: runs the reference model over a text and writes its KV cache as safetensors.
// Example: kvstream prefill --model data/models/stories260K/stories260K.bin
//            --tokenizer data/models/stories260K/tok512.bin
//            --text-file data/text/tinystories_val.txt --max-tokens 448 -o kv.safetensors
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/command_registry.h"
#include "cli/model_args.h"
#include "codec/safetensors.h"
#include "model/file_bytes.h"
#include "model/model.h"

namespace {
struct PrefillOptions {
  std::string model, tokenizer, prompt, text_file, out, dtype = "f32";
  size_t max_tokens = 0;
  bool pre_rope = false;
};
}  // namespace

KVSTREAM_COMMAND("prefill", "Run the reference model over text and write its KV cache (safetensors)", [](CLI::App& sub) {
  auto o = std::make_shared<PrefillOptions>();
  kvstream::cli::add_model_args(sub, o->model, o->tokenizer);
  auto* prompt = sub.add_option("--prompt", o->prompt, "text to prefill (default: none; give this or --text-file)");
  auto* file = sub.add_option("--text-file", o->text_file, "file whose text to prefill (default: none; give this or --prompt)");
  prompt->excludes(file);
  sub.add_option("--max-tokens", o->max_tokens, "keep the first N tokens, BOS included (0 = the model's seq_len)");
  sub.add_flag("--pre-rope", o->pre_rope, "store keys before rotary embedding (AttentionStore style)");
  sub.add_option("--dtype", o->dtype, "f32, f16 or bf16")->capture_default_str();
  sub.add_option("-o,--output", o->out, "output .safetensors file")->required();
  return kvstream::cli::Action([o, prompt, file] {
    using namespace kvstream::model;
    if (!*prompt && !*file) throw std::invalid_argument("prefill: give --prompt or --text-file");
    const kvstream::Dtype dtype = kvstream::parse_dtype(o->dtype);
    const auto [m, tok] = kvstream::cli::load_model(o->model, o->tokenizer);
    auto ids = tok.encode(*file ? read_text_file(o->text_file) : o->prompt);
    const size_t limit = o->max_tokens ? o->max_tokens : size_t(m.config().seq_len);
    if (ids.size() > limit) ids.resize(limit);
    kvstream::KvCache kv = m.new_cache(o->pre_rope);
    const auto t0 = std::chrono::steady_clock::now();
    m.recompute(kv, ids);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    kvstream::write_safetensors(o->out, kv, dtype);
    const auto info = kvstream::inspect_safetensors(o->out);
    std::printf("prefill: %zu tokens, %d layers x %d kv heads x %d, keys %s-RoPE -> %s: %zu bytes (%s, %zu B/token) in %.2f ms (%.0f tok/s)\n",
                kv.num_tokens(), kv.shape.n_layers, kv.shape.n_kv_heads, kv.shape.head_dim,
                kv.keys_pre_rope ? "pre" : "post", o->out.c_str(), info.file_bytes, kvstream::dtype_name(dtype),
                kv.values_per_token() * kvstream::dtype_size(dtype), s * 1e3, kv.num_tokens() / s);
    return 0;
  });
});
