// `kvstream bench codec`: size and speed of every level and baseline on one KV file (bench/codec_bench.h),
// the current decoder side by side with the previous one (format 2, bench/bench_reference.h).
#include <algorithm>
#include <iomanip>
#include <iostream>

#include "cli/command_registry.h"
#include "bench/codec_bench.h"
#include "codec/decode_engine.h"
#include "codec/safetensors.h"

KVSTREAM_COMMAND("bench codec", "Bytes, ratios, coder efficiency and throughput of every codec level and baseline",
                 ([](CLI::App& sub) -> kvstream::cli::Action {
  struct Opts {
    std::string kv, profile, level, path = "auto", decoders = "both";
    uint32_t chunk_tokens = 64;
    int threads = 0, repeats = 5, symbols_per_stream = kvstream::codec::EncodeOptions{}.symbols_per_stream;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  sub.add_option("kv", o->kv, "KV cache (.safetensors)")->required();
  sub.add_option("--profile", o->profile, "codec profile (.kvprofile, from `kvstream profile`)")->required();
  sub.add_option("--chunk-tokens", o->chunk_tokens, "tokens per chunk")->capture_default_str();
  sub.add_option("--threads", o->threads, "threads for the all-threads decode (0 = all cores)")->capture_default_str();
  sub.add_option("--repeats", o->repeats, "timed repetitions (best kept; the decoders alternate)")->capture_default_str();
  sub.add_option("--symbols-per-stream", o->symbols_per_stream,
                 "rANS symbols per interleaved group of 16 states (more groups: more parallel decode, 64 bytes of states each)")
      ->capture_default_str();
  sub.add_option("--level", o->level, "bench only this profile level (default: every level and baseline)");
  sub.add_option("--decode-path", o->path, "CPU decode path: auto (the widest this CPU has), scalar, avx2 or avx512")
      ->capture_default_str();
  sub.add_option("--decoders", o->decoders,
                 "both (the current decoder and, on levels, the previous one on format-2 blobs, alternating), current or reference")
      ->check(CLI::IsMember({"both", "current", "reference"}))
      ->capture_default_str();
  sub.add_flag("--json", o->json, "print JSON instead of the table");
  return [o] {
    kvstream::codec::set_decode_path(kvstream::codec::parse_decode_path(o->path));
    const auto kv = kvstream::read_safetensors(o->kv);
    const auto p = kvstream::codec::load_profile(o->profile);
    kvstream::codec::EncodeOptions eo;
    eo.symbols_per_stream = o->symbols_per_stream;
    const auto r = kvstream::codec::bench_codec(kv, p, o->chunk_tokens, o->threads, o->repeats, eo, o->level, o->decoders);
    if (o->json) {
      nlohmann::json j = {{"chunk_tokens", r.chunk_tokens}, {"tokens", r.tokens}, {"threads", r.threads},
                          {"decode_path", r.decode_path}, {"output", "fp16, keys post-RoPE"},
                          {"entries", nlohmann::json::array()}};
      for (const auto& e : r.entries) {
        nlohmann::json x = {{"name", e.name}, {"kind", e.kind}, {"bytes", e.bytes},
                            {"bits_per_value", e.bits_per_value}, {"ratio_vs_fp16", e.ratio_vs_fp16},
                            {"ratio_vs_q8", e.ratio_vs_q8}, {"coder_efficiency", e.coder_efficiency},
                            {"side_info_fraction", e.side_info_fraction},
                            {"encode_mbps_1t", e.encode_mbps_1t}, {"decode_mbps_1t", e.decode_mbps_1t},
                            {"decode_mbps_all", e.decode_mbps_all},
                            {"decode_mbps_1t_far_rows", e.decode_mbps_1t_far_rows},
                            {"decode_scaling_all", e.decode_mbps_1t > 0 ? e.decode_mbps_all / e.decode_mbps_1t : 0.0}};
        if (!e.decode_mbps_1t_per_core.empty()) {
          const double fastest = *std::max_element(e.decode_mbps_1t_per_core.begin(), e.decode_mbps_1t_per_core.end());
          x["decode_mbps_1t_per_core"] = e.decode_mbps_1t_per_core;
          x["decode_scaling_vs_fastest_core"] = e.decode_mbps_all / fastest;
          x["decode_scaling_vs_fastest_core_median"] = e.scaling_vs_fastest_core_median;
          x["decode_efficiency_vs_cores_median"] = e.efficiency_vs_cores_median;
          x["decode_mbps_all_cold"] = e.decode_mbps_all_cold;
          x["decode_mbps_all_cores_at_once"] = e.decode_mbps_together;
          x["decode_all_vs_all_cores_at_once_median"] = e.vs_together_median;
        }
        if (e.ref_bytes) {
          x["reference"] = {{"blob_version", 2}, {"bytes", e.ref_bytes},
                            {"size_change_pct", 100.0 * (double(e.bytes) / double(e.ref_bytes) - 1.0)},
                            {"coder_efficiency", e.ref_coder_efficiency}, {"decode_mbps_1t", e.ref_decode_mbps_1t},
                            {"decode_speedup_1t", e.ref_decode_mbps_1t > 0 ? e.decode_mbps_1t / e.ref_decode_mbps_1t : 0.0},
                            {"identical_output", e.identical_to_reference}};
        }
        j["entries"].push_back(x);
      }
      std::cout << j.dump(2) << "\n";
      return 0;
    }
    std::cout << r.tokens << " tokens, " << r.chunk_tokens << "-token chunks, " << r.threads << " threads, decode path "
              << r.decode_path << "; MB/s of fp16 output (keys post-RoPE); ref = previous decoder on format-2 blobs\n"
              << std::left << std::setw(15) << "name" << std::right << std::setw(9) << "bytes" << std::setw(9)
              << "bits/v" << std::setw(8) << "x fp16" << std::setw(8) << "x q8" << std::setw(8) << "eff"
              << std::setw(8) << "side" << std::setw(9) << "enc MB/s" << std::setw(9) << "dec 1t" << std::setw(9)
              << "dec all" << std::setw(9) << "ref 1t" << std::setw(9) << "ref B" << std::setw(6) << "same\n";
    for (const auto& e : r.entries) {
      std::cout << std::left << std::setw(15) << e.name << std::right << std::fixed << std::setw(9) << e.bytes
                << std::setprecision(3) << std::setw(9) << e.bits_per_value << std::setprecision(2) << std::setw(8)
                << e.ratio_vs_fp16 << std::setw(8) << e.ratio_vs_q8 << std::setprecision(4) << std::setw(8)
                << e.coder_efficiency << std::setw(8) << e.side_info_fraction << std::setprecision(0)
                << std::setw(9) << e.encode_mbps_1t << std::setw(9) << e.decode_mbps_1t << std::setw(9)
                << e.decode_mbps_all;
      if (e.ref_bytes)
        std::cout << std::setw(9) << e.ref_decode_mbps_1t << std::setw(9) << e.ref_bytes << std::setw(5)
                  << (e.identical_to_reference ? "yes" : "NO");
      std::cout << "\n";
    }
    return 0;
  };
}));
