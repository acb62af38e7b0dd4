// bench.h (codec): size and speed of every profile level and baseline on one KV cache, through the
// same chunk codec the container uses (`kvstream bench codec`, scripts/bench_codec.sh).
//
// Contract: bench_codec() encodes the cache in chunk_tokens-token chunks with each method, decodes
// every chunk back (keys post-RoPE, as attention consumes them) and reports bytes, bits/value,
// ratios, coder efficiency, side-info fraction and best-of-`repeats` throughput in fp16-equivalent
// MB/s (2 bytes per value / wall time), single-threaded and with `threads` threads over chunks.
#pragma once
#include <string>
#include <vector>

#include "codec/chunk_codec.h"
#include "codec/profile.h"

namespace kvstream::codec {

struct BenchEntry {
  std::string name;
  std::string kind;  // "level" | "baseline"
  size_t bytes = 0;
  double bits_per_value = 0, ratio_vs_fp16 = 0, ratio_vs_q8 = 0;
  double coder_efficiency = 1;    // ideal bits (-sum log2 p under the tables used) / coded bits
  double side_info_fraction = 0;  // header, stream directory, CRC / total bytes
  double encode_mbps_1t = 0, decode_mbps_1t = 0, decode_mbps_all = 0;
};
struct BenchReport {
  uint32_t chunk_tokens = 64;
  size_t tokens = 0, values = 0;
  int threads = 1;
  std::vector<BenchEntry> entries;
};
BenchReport bench_codec(const KvCache& kv, const Profile& profile, uint32_t chunk_tokens = 64,
                        int threads = 0, int repeats = 5, const EncodeOptions& opt = {});

}  // namespace kvstream::codec
