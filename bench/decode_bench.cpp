// `kvstream bench decode` measurement (decode_bench.h).
#include "bench/decode_bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <stdexcept>
#include <vector>

#include "codec/chunk_codec.h"
#include "codec/thread_pool.h"

namespace kvstream::codec {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, size_t(std::ceil(q * double(v.size()))) - (q > 0 ? 1 : 0));
  return v[i];
}

std::vector<uint8_t> all_rows(Decoder& d, const KvDest& dst, uint32_t rows) {
  std::vector<uint8_t> out;
  for (int l = 0; l < dst.shape.n_layers; ++l)
    for (int kind = 0; kind < 2; ++kind) {
      const auto b = d.read_back(dst, l, kind, rows);
      out.insert(out.end(), b.begin(), b.end());
    }
  return out;
}

}  // namespace

nlohmann::json run_decode_bench(Decoder& dec, const KvCache& kv, const Profile& profile,
                                const DecodeBenchOptions& opt) {
  kv.validate();
  if (!(kv.shape == profile.shape)) throw std::invalid_argument("bench decode: the KV cache's shape differs from the profile's");
  if (kv.num_tokens() == 0) throw std::invalid_argument("bench decode: empty KV cache");
  if (opt.chunk_tokens == 0 || opt.batch_chunks == 0 || !(opt.min_output_mb > 0))
    throw std::invalid_argument("bench decode: chunk_tokens, batch_chunks and min_output_mb must be positive");
  const int level = opt.level.empty() ? 0 : profile.level_index(opt.level);
  const uint32_t T = uint32_t(kv.num_tokens());

  // Encode (in parallel; not timed).
  const size_t n_chunks = (T + opt.chunk_tokens - 1) / opt.chunk_tokens;
  std::vector<std::vector<uint8_t>> blobs(n_chunks);
  EncodeOptions eo;
  eo.symbols_per_stream = opt.symbols_per_stream;
  parallel_for(n_chunks, 0, [&](size_t c) {
    const size_t b = c * opt.chunk_tokens, e = std::min<size_t>(T, b + opt.chunk_tokens);
    blobs[c] = encode_chunk(kv, b, e, uint32_t(b), Method::Quant, &profile, level, eo);
  });
  std::vector<std::span<const uint8_t>> spans(blobs.begin(), blobs.end());
  size_t blob_bytes = 0;
  uint32_t streams_max = 0;
  uint64_t escapes = 0;
  for (const auto& b : blobs) {
    blob_bytes += b.size();
    const auto lay = parse_quant_layout(b, parse_blob_header(b));
    streams_max = std::max(streams_max, lay.streams);
    escapes += lay.escapes;
  }
  const size_t elem = dest_elem_bytes(opt.dtype);
  const uint64_t values_per_pass = kv.values_per_token() * T;
  const uint64_t out_per_pass = values_per_pass * elem;
  const uint64_t min_out = uint64_t(opt.min_output_mb * 1048576.0);
  const uint32_t passes = uint32_t(std::max<uint64_t>(1, (min_out + out_per_pass - 1) / out_per_pass));
  if (uint64_t(passes) * T > 0xFFFFFFFFull) throw std::invalid_argument("bench decode: too many rows");

  dec.set_profile(profile);
  KvBuffer buf = dec.allocate(kv.shape, opt.dtype, passes * T, 0, opt.keys_pre_rope, profile.rope_theta);

  // Untimed pass: warm-up (tables, staging) and bit-exactness against the CPU decoder.
  dec.submit(spans, buf.dest);
  dec.finish();
  CpuDecoder cpu;
  cpu.set_profile(profile);
  KvBuffer ref = cpu.allocate(kv.shape, opt.dtype, T, 0, opt.keys_pre_rope, profile.rope_theta);
  cpu.submit(spans, ref.dest);
  const bool verified = all_rows(dec, buf.dest, T) == all_rows(cpu, ref.dest, T);

  // Throughput: `passes` passes into distinct rows, batch_chunks per submit, one finish.
  dec.reset_stats();
  const std::clock_t c0 = std::clock();  // process CPU time: meaningful on a shared machine
  auto t0 = Clock::now();
  for (uint32_t p = 0; p < passes; ++p) {
    const KvDest view = buf.dest.offset_rows(p * T);
    for (size_t i = 0; i < spans.size(); i += opt.batch_chunks)
      dec.submit(std::span(spans).subspan(i, std::min<size_t>(opt.batch_chunks, spans.size() - i)), view);
  }
  dec.finish();
  const double wall_ms = ms_since(t0);
  const double cpu_ms = 1e3 * double(std::clock() - c0) / CLOCKS_PER_SEC;
  const DecoderStats st = dec.stats();

  // Streaming: one chunk per submit, as a receiver feeds them.
  dec.reset_stats();
  t0 = Clock::now();
  uint64_t stream_out = 0;
  const uint32_t stream_passes = std::max<uint32_t>(1, passes / 4);
  for (uint32_t p = 0; p < stream_passes; ++p) {
    const KvDest view = buf.dest.offset_rows(p * T);
    for (const auto& s : spans) dec.submit(s, view);
    stream_out += out_per_pass;
  }
  dec.finish();
  const double stream_ms = ms_since(t0);

  // Latency: submit one chunk, wait for it.
  std::vector<double> lat;
  for (uint32_t i = 0; i < opt.latency_chunks; ++i) {
    t0 = Clock::now();
    dec.decode(spans[i % spans.size()], buf.dest);
    lat.push_back(ms_since(t0));
  }
  double lat_sum = 0;
  for (double x : lat) lat_sum += x;

  const uint64_t out_bytes = out_per_pass * passes;
  nlohmann::json j;
  j["decoder"] = dec.name();
  j["device_name"] = dec.device_name();
  j["model"] = kv.model_name;
  j["shape"] = {{"n_layers", kv.shape.n_layers}, {"n_kv_heads", kv.shape.n_kv_heads}, {"head_dim", kv.shape.head_dim}};
  j["level"] = profile.levels[size_t(level)].name;
  j["dtype"] = dtype_name(opt.dtype);
  j["keys"] = opt.keys_pre_rope ? "pre-rope" : "post-rope (rotated on decode)";
  j["tokens"] = T;
  j["chunk_tokens"] = opt.chunk_tokens;
  j["chunks"] = n_chunks;
  j["symbols_per_stream"] = opt.symbols_per_stream;
  j["streams_per_chunk_max"] = streams_max;
  j["escapes"] = escapes;
  j["encoded_bytes_per_pass"] = blob_bytes;
  j["bits_per_value"] = 8.0 * double(blob_bytes) / double(values_per_pass);
  j["verified_vs_cpu"] = verified;
  j["throughput"] = {{"passes", passes},
                     {"batch_chunks", opt.batch_chunks},
                     {"output_bytes", out_bytes},
                     {"wall_ms", wall_ms},
                     {"output_GBps", double(out_bytes) / (wall_ms * 1e6)},
                     {"process_cpu_ms", cpu_ms},
                     {"output_GB_per_cpu_s", double(out_bytes) / (cpu_ms * 1e6)},
                     {"input_GBps", double(blob_bytes) * passes / (wall_ms * 1e6)},
                     {"values_per_s", double(values_per_pass) * passes / (wall_ms / 1e3)}};
  j["streaming"] = {{"passes", stream_passes},
                    {"chunks_per_submit", 1},
                    {"output_bytes", stream_out},
                    {"wall_ms", stream_ms},
                    {"output_GBps", double(stream_out) / (stream_ms * 1e6)}};
  nlohmann::json ov = {{"host_ms", st.host_ms}, {"batches", st.batches}};
  if (dec.name() == "cuda") {
    ov["h2d_ms"] = st.h2d_ms;
    ov["kernel_ms"] = st.kernel_ms;
    ov["h2d_hidden_fraction"] =
        st.h2d_ms > 0 ? std::clamp((st.h2d_ms + st.kernel_ms - wall_ms) / st.h2d_ms, 0.0, 1.0) : 0.0;
  } else {
    ov["note"] = "CPU decoder: no host-to-device copy";
  }
  j["overlap"] = ov;
  j["latency_ms"] = {{"chunks", lat.size()},
                     {"mean", lat.empty() ? 0 : lat_sum / double(lat.size())},
                     {"p50", percentile(lat, 0.5)},
                     {"p90", percentile(lat, 0.9)},
                     {"p99", percentile(lat, 0.99)}};
  return j;
}

}  // namespace kvstream::codec
