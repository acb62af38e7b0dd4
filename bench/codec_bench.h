// bench.h (codec): size and speed of every profile level and baseline on one KV cache, through the
// same chunk codec the container uses (`kvstream bench codec`, scripts/bench_codec.sh).
//
// Contract: bench_codec() encodes the cache in chunk_tokens-token chunks with each method and
// decodes every chunk back into fp16, keys post-RoPE (what attention consumes), with the current
// CPU decoder (CpuDecoder, one submit of all chunks, on the active decode path, decode_engine.h).
// Per profile level it also encodes the chunks in blob format 2 (4096 symbols per stream, that
// format's default) and decodes those with the
// previous decoder (bench_reference.h), timing the two alternately in the same repetitions, and
// checks that both produce the same bytes. Reported: bytes, bits/value, ratios, coder efficiency,
// side-info fraction, best-of-`repeats` throughput in MB/s of fp16 output (2 bytes per value / wall
// time) single-threaded and with `threads` threads over chunks.
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
  double side_info_fraction = 0;  // header, group directory, CRC / total bytes
  double encode_mbps_1t = 0, decode_mbps_1t = 0, decode_mbps_all = 0;
  // One thread into rows out of cache (each repetition the next rows of a 64 MB destination),
  // where decode_mbps_1t writes the same cache-resident rows every time.
  double decode_mbps_1t_far_rows = 0;
  // One thread pinned to each of the first `threads` CPUs this process may run on, in turn, in the
  // same repetitions (empty when pinning is not possible): a VM's cores can run at different
  // speeds, and decode_mbps_1t is on whichever core the scheduler gave the calling thread.
  std::vector<double> decode_mbps_1t_per_core;
  // decode_mbps_all is the second of two back-to-back all-threads passes (the pool's workers still
  // spinning); decode_mbps_all_cold the first, which wakes them from sleep. The median over the
  // repetitions of (fastest pinned core's time / warm all-threads time) in the same repetition:
  // robust to a VM's cores changing speed between repetitions (0 when not measured).
  // efficiency_vs_cores_median: the median of (warm all-threads rate / the sum of the pinned cores'
  // rates) in the same repetition: 1 is perfect use of cores of any speeds (0 when not measured).
  double decode_mbps_all_cold = 0, scaling_vs_fastest_core_median = 0, efficiency_vs_cores_median = 0;
  // The control: one pinned thread per core, released at once, each decoding the whole context
  // with its own decoder and output and timing itself; MB/s = the sum of their rates (what the
  // machine gives independent work on every core at once). vs_together_median: the median of
  // (warm all-threads rate / that rate) per repetition (1 = as good as independent work).
  double decode_mbps_together = 0, vs_together_median = 0;
  // levels only: the previous format and decoder, measured alongside (0 for baselines)
  size_t ref_bytes = 0;                // the same chunks in blob format 2
  double ref_coder_efficiency = 0;
  double ref_decode_mbps_1t = 0;       // the previous CPU decoder, same repetitions, alternating
  bool identical_to_reference = false; // both decoders wrote the same fp16 bytes
};
struct BenchReport {
  uint32_t chunk_tokens = 64;
  size_t tokens = 0, values = 0;
  int threads = 1;
  std::string decode_path;  // decode_engine.h path of the current decoder
  std::vector<BenchEntry> entries;
};
// only_level: bench just that profile level (no baselines); empty = every level and baseline.
// decoders: "both" (the current decoder and, on levels, the previous one), "current" or
// "reference" (one of them alone: what scripts/profile_decode.sh samples). Encoding is timed over
// min(repeats, 3) repetitions.
BenchReport bench_codec(const KvCache& kv, const Profile& profile, uint32_t chunk_tokens = 64,
                        int threads = 0, int repeats = 5, const EncodeOptions& opt = {},
                        const std::string& only_level = "", const std::string& decoders = "both");

}  // namespace kvstream::codec
