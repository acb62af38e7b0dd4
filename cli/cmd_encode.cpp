// `kvstream encode`: KV safetensors -> .kvs container with every ladder level (codec/container.h).
#include <fstream>
#include <iostream>

#include "cli/command_registry.h"
#include "codec/container.h"
#include "codec/safetensors.h"

KVSTREAM_COMMAND("encode", "Encode a KV cache file into a .kvs container (all ladder levels + text)",
                 ([](CLI::App& sub) -> kvstream::cli::Action {
  struct Opts {
    std::string kv, profile, out, ladder;
    uint32_t chunk_tokens = 64;
    int threads = 0, symbols_per_stream = kvstream::codec::EncodeOptions{}.symbols_per_stream;
    bool baselines = false;
  };
  auto o = std::make_shared<Opts>();
  sub.add_option("kv", o->kv, "KV cache (.safetensors)")->required();
  sub.add_option("--profile", o->profile, "codec profile (.kvprofile, from `kvstream profile`)")->required();
  sub.add_option("-o,--output", o->out, "container to write (.kvs)")->required();
  sub.add_option("--chunk-tokens", o->chunk_tokens, "tokens per chunk (the unit the streamer adapts on)");
  sub.add_option("--ladder", o->ladder, "ladder JSON (array of {name, method, profile_level, ...}); default: the profile's levels + text");
  sub.add_flag("--baselines", o->baselines, "also store fp16, q8, q4 and zstd-fp16 levels");
  sub.add_option("--symbols-per-stream", o->symbols_per_stream,
                 "rANS symbols per interleaved group of 16 states (more groups: more parallel decode, 64 bytes of states each)")
      ->capture_default_str();
  sub.add_option("--threads", o->threads, "encode threads (0 = all cores)");
  return [o] {
    namespace c = kvstream::codec;
    const auto kv = kvstream::read_safetensors(o->kv);
    const auto p = c::load_profile(o->profile);
    std::vector<c::LadderLevel> ladder;
    if (!o->ladder.empty()) {
      std::ifstream f(o->ladder);
      if (!f) throw std::runtime_error("cannot open ladder " + o->ladder);
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(f);
      } catch (const std::exception& e) {
        throw std::runtime_error("ladder " + o->ladder + ": " + e.what());
      }
      ladder = c::ladder_from_json(j.is_object() ? j.at("ladder") : j);
      if (ladder.back().method != c::Method::Text) ladder.push_back({"text", c::Method::Text, -1, {}});
    } else {
      ladder = c::default_ladder(p);
    }
    if (o->baselines) c::add_baselines(ladder);
    c::EncodeOptions eo;
    eo.symbols_per_stream = o->symbols_per_stream;
    const auto bytes = c::encode_container(kv, p, ladder, o->chunk_tokens, eo, o->threads);
    std::ofstream f(o->out, std::ios::binary);
    if (!f) throw std::runtime_error("cannot write " + o->out);
    f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    if (!f) throw std::runtime_error("error writing " + o->out);
    const auto r = c::ContainerReader::parse(bytes);
    std::cout << o->out << ": " << kv.num_tokens() << " tokens, " << r.info().num_chunks << " chunks, "
              << bytes.size() << " bytes\n";
    for (size_t l = 0; l < ladder.size(); ++l) {
      size_t total = 0;
      for (uint32_t ch = 0; ch < r.info().num_chunks; ++ch) total += r.blob_size(ch, int(l));
      std::cout << "  " << ladder[l].name << ": " << total << " bytes\n";
    }
    return 0;
  };
}));
