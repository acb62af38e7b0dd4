// decode_bench.h: the measurement behind `kvstream bench decode` — decode throughput, host->device
// overlap and per-chunk latency of any Decoder on real chunks, identical for CPU and CUDA so the
// JSON reports are comparable.
//
// Method: the cache's tokens are encoded into chunks (token t at position t) at one profile level;
// one untimed pass decodes them all and compares the destination with the CPU decoder byte for byte
// (verified_vs_cpu). The throughput pass then decodes the chunk set `passes` times, each pass into
// fresh destination rows (so the output really covers >= min_output_mb of distinct memory), in
// submits of batch_chunks chunks, and finishes once: output GB/s = fp16 (or dtype) bytes written /
// wall time (and per second of process CPU time, which stays meaningful on a loaded machine).
// A streaming pass repeats that with one chunk per submit (how a receiver feeds
// chunks). Latency: `latency_chunks` times submit(one chunk) + finish(), wall clock each.
// Overlap (CUDA): sum of per-batch copy and kernel times (CUDA events) against the wall time of
// the throughput pass: hidden = (h2d + kernel - wall) / h2d, clamped to [0, 1].
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "codec/decoder.h"

namespace kvstream::codec {

struct DecodeBenchOptions {
  std::string level;             // profile level name; empty = the first (best quality) level
  uint32_t chunk_tokens = 64;
  int symbols_per_stream = EncodeOptions{}.symbols_per_stream;
  double min_output_mb = 256;    // output bytes of the throughput pass, at least
  Dtype dtype = Dtype::F16;
  uint32_t batch_chunks = 64;    // chunks per submit in the throughput pass
  uint32_t latency_chunks = 200;
  bool keys_pre_rope = false;    // destination keeps pre-RoPE keys (no rotation on decode)
};

// Throws std::invalid_argument when the cache does not fit the profile or options are bad.
nlohmann::json run_decode_bench(Decoder& dec, const KvCache& kv, const Profile& profile,
                                const DecodeBenchOptions& opt);

}  // namespace kvstream::codec
