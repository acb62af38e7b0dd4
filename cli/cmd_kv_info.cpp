// `kvstream kv-info FILE [--json]`: describes a KV cache safetensors file (reads only its header).
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/command_registry.h"
#include "codec/safetensors.h"

namespace {
struct KvInfoOptions {
  std::string path;
  bool json = false;
};
}  // namespace

KVSTREAM_COMMAND("kv-info", "Describe a KV cache safetensors file", [](CLI::App& sub) {
  auto o = std::make_shared<KvInfoOptions>();
  sub.add_option("file", o->path, "KV cache .safetensors file")->required();
  sub.add_flag("--json", o->json, "print JSON");
  return kvstream::cli::Action([o] {
    const kvstream::SafetensorsInfo i = kvstream::inspect_safetensors(o->path);
    const size_t data = i.file_bytes - 8 - i.header_bytes;
    if (o->json) {
      nlohmann::json j = {{"file", o->path},           {"file_bytes", i.file_bytes},
                          {"header_bytes", i.header_bytes}, {"data_bytes", data},
                          {"tokens", i.num_tokens},     {"layers", i.shape.n_layers},
                          {"kv_heads", i.shape.n_kv_heads}, {"head_dim", i.shape.head_dim},
                          {"dtype", i.dtype},           {"model", i.model_name},
                          {"rope_theta", i.rope_theta}, {"keys_pre_rope", i.keys_pre_rope}};
      for (const auto& [k, v] : i.metadata) j["metadata"][k] = v;
      std::cout << j.dump(2) << "\n";
      return 0;
    }
    std::printf("%s: KV cache of %zu tokens from model '%s'\n", o->path.c_str(), i.num_tokens, i.model_name.c_str());
    std::printf("  shape      %d layers x %d kv heads x %d head_dim (K and V)\n", i.shape.n_layers,
                i.shape.n_kv_heads, i.shape.head_dim);
    std::printf("  dtype      %s\n", i.dtype.c_str());
    std::printf("  keys       %s RoPE (rope_theta %g)\n", i.keys_pre_rope ? "before" : "after", i.rope_theta);
    std::printf("  bytes      %zu total = 8 + %zu header + %zu data", i.file_bytes, i.header_bytes, data);
    if (i.num_tokens) std::printf(" (%.1f B/token)", double(data) / double(i.num_tokens));
    std::printf("\n");
    return 0;
  });
});
