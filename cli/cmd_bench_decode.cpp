// `kvstream bench decode`: decode throughput / overlap / per-chunk latency of the CPU or CUDA
// decoder on real chunks of a KV cache (logic in bench/decode_bench). Example:
//   kvstream bench decode --device cpu --json kv.safetensors --profile stories260K.kvprofile
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli/command_registry.h"
#include "bench/decode_bench.h"
#include "codec/safetensors.h"

namespace {
struct BenchDecodeOpts {
  std::string kv;
  std::string profile;
  std::string device = "cpu";
  std::string dtype = "f16";
  std::string out;
  bool json = false;
  kvstream::codec::DecodeBenchOptions b;
};
const std::vector<std::string> kDevices = {"cpu", "cuda"};
}  // namespace

// (no unparenthesised commas inside the macro argument below)
KVSTREAM_COMMAND("bench decode", "Decode throughput, H2D overlap and chunk latency (--device cpu|cuda)",
                 [](CLI::App& sub) -> kvstream::cli::Action {
  auto o = std::make_shared<BenchDecodeOpts>();
  sub.add_option("kv", o->kv, "KV cache (.safetensors, e.g. from `kvstream prefill`)")->required();
  sub.add_option("--profile", o->profile, "codec profile (from `kvstream profile`)")->required();
  sub.add_option("--device", o->device, "cpu or cuda")->check(CLI::IsMember(kDevices))->capture_default_str();
  sub.add_option("--level", o->b.level, "profile level (default: the first)");
  sub.add_option("--dtype", o->dtype, "output dtype: f16, bf16 or f32")->capture_default_str();
  sub.add_option("--chunk-tokens", o->b.chunk_tokens, "tokens per chunk")->capture_default_str();
  sub.add_option("--symbols-per-stream", o->b.symbols_per_stream,
                 "rANS symbols per interleaved group of 16 states (more groups: more GPU threads)")
      ->capture_default_str();
  sub.add_option("--min-output-mb", o->b.min_output_mb, "decoded output of the throughput pass, at least")->capture_default_str();
  sub.add_option("--batch-chunks", o->b.batch_chunks, "chunks per submit in the throughput pass")->capture_default_str();
  sub.add_option("--latency-chunks", o->b.latency_chunks, "single-chunk decodes timed for the latency percentiles")->capture_default_str();
  sub.add_flag("--pre-rope", o->b.keys_pre_rope, "keep keys pre-RoPE in the output (no rotation)");
  sub.add_flag("--json", o->json, "print the JSON report");
  sub.add_option("-o,--output", o->out, "also write the JSON report to this file (default: none)");
  return [o] {
    o->b.dtype = kvstream::parse_dtype(o->dtype);
    std::string note;
    auto dec = kvstream::codec::make_decoder(o->device, &note);  // cuda without a device: clear error
    const auto kv = kvstream::read_safetensors(o->kv);
    const auto profile = kvstream::codec::load_profile(o->profile);
    const auto j = kvstream::codec::run_decode_bench(*dec, kv, profile, o->b);
    if (!o->out.empty()) {
      std::FILE* f = std::fopen(o->out.c_str(), "w");
      if (!f) throw std::runtime_error("cannot write " + o->out);
      const std::string s = j.dump(2) + "\n";
      const bool ok = std::fwrite(s.data(), 1, s.size(), f) == s.size();
      if (std::fclose(f) != 0 || !ok) throw std::runtime_error("error writing " + o->out);
    }
    if (o->json) {
      std::cout << j.dump(2) << "\n";
    } else {
      const auto& t = j["throughput"];
      std::cout << "decode on " << j["decoder"].get<std::string>() << " (" << j["device_name"].get<std::string>()
                << "), level " << j["level"].get<std::string>() << ", " << j["tokens"] << " tokens x "
                << t["passes"] << " passes -> " << t["output_bytes"] << " B " << j["dtype"].get<std::string>() << "\n"
                << "  throughput " << t["output_GBps"].get<double>() << " GB/s output ("
                << t["values_per_s"].get<double>() / 1e6 << " M values/s), streaming "
                << j["streaming"]["output_GBps"].get<double>() << " GB/s\n"
                << "  latency per chunk p50 " << j["latency_ms"]["p50"].get<double>() << " ms, p99 "
                << j["latency_ms"]["p99"].get<double>() << " ms; bit-identical to CPU decoder: "
                << (j["verified_vs_cpu"].get<bool>() ? "yes" : "NO") << "\n";
    }
    return j["verified_vs_cpu"].get<bool>() ? 0 : 2;
  };
});
