// `kvstream decode`: one level of a .kvs container -> KV safetensors (codec/container.h).
#include <iostream>

#include "cli/command_registry.h"
#include "codec/container.h"
#include "codec/safetensors.h"

KVSTREAM_COMMAND("decode", "Decode one level of a .kvs container into a KV cache file",
                 ([](CLI::App& sub) -> kvstream::cli::Action {
  struct Opts {
    std::string in, profile, level, chunks, out, dtype = "f32";
    bool pre_rope = false;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  sub.add_option("kvs", o->in, ".kvs container")->required();
  sub.add_option("--profile", o->profile, "profile the container names, needed for quantized levels (default: none)");
  sub.add_option("--level", o->level, "level name (default: the first, best-quality level)");
  sub.add_option("--chunks", o->chunks, "a:b decodes chunks [a, b) (default: all)");
  sub.add_flag("--pre-rope", o->pre_rope, "write keys before RoPE");
  sub.add_option("--dtype", o->dtype, "f32, f16 or bf16");
  sub.add_option("--threads", o->threads, "decode threads (0 = all cores)");
  sub.add_option("-o,--output", o->out, "KV cache file to write (.safetensors)")->required();
  return [o] {
    namespace c = kvstream::codec;
    const auto r = c::ContainerReader::open(o->in);
    const auto& info = r.info();
    std::optional<c::Profile> p;
    if (!o->profile.empty()) p = c::load_profile(o->profile);
    const int level = o->level.empty() ? 0 : info.level_index(o->level);
    uint32_t a = 0, b = info.num_chunks;
    if (!o->chunks.empty()) {
      const auto colon = o->chunks.find(':');
      if (colon == std::string::npos) throw std::invalid_argument("--chunks must be a:b");
      try {
        a = uint32_t(std::stoul(o->chunks.substr(0, colon)));
        b = uint32_t(std::stoul(o->chunks.substr(colon + 1)));
      } catch (const std::exception&) {
        throw std::invalid_argument("--chunks must be a:b with numbers");
      }
    }
    const auto kv = c::decode_container(r, p ? &*p : nullptr, level, a, b, o->pre_rope, o->threads);
    kvstream::write_safetensors(o->out, kv, kvstream::parse_dtype(o->dtype));
    std::cout << o->out << ": level " << info.ladder[level].name << ", chunks " << a << ":" << b << ", "
              << kv.num_tokens() << " tokens\n";
    return 0;
  };
}));
