#include "bench/codec_bench.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "bench/bench_reference.h"
#include "codec/decode_engine.h"
#include "codec/decoder.h"
#include "codec/thread_pool.h"

namespace kvstream::codec {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::vector<uint8_t> all_bytes(CpuDecoder& d, const KvDest& dst) {
  std::vector<uint8_t> out;
  for (int l = 0; l < dst.shape.n_layers; ++l)
    for (int kind = 0; kind < 2; ++kind) {
      const auto b = d.read_back(dst, l, kind, dst.capacity);
      out.insert(out.end(), b.begin(), b.end());
    }
  return out;
}

struct Stats {
  size_t bytes = 0;
  double efficiency = 1, side_fraction = 0;
};
Stats blob_set_stats(const std::vector<std::vector<uint8_t>>& blobs, const Profile& p, const LevelDecodeTables* t) {
  double ideal = 0, coded = 0;
  size_t side = 0;
  Stats s;
  for (const auto& b : blobs) {
    const BlobStats st = blob_stats(b, &p, t);
    s.bytes += st.bytes;
    side += st.side_info_bytes;
    ideal += st.ideal_bits;
    coded += st.coded_bits;
  }
  s.efficiency = coded > 0 ? ideal / coded : 1.0;
  s.side_fraction = double(side) / double(s.bytes);
  return s;
}

// The first n CPUs this process may run on (fewer when it may run on fewer).
std::vector<int> allowed_cpus(size_t n) {
  std::vector<int> out;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return out;
  for (int c = 0; c < CPU_SETSIZE && out.size() < n; ++c)
    if (CPU_ISSET(c, &set)) out.push_back(c);
  return out;
}

// Seconds `work` takes on a thread pinned to `cpu` (negative when it cannot be pinned).
template <class Work>
double seconds_on_cpu(int cpu, Work&& work) {
  double s = -1;
  std::thread t([&] {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0) return;
    const auto t0 = Clock::now();
    work();
    s = seconds_since(t0);
  });
  t.join();
  return s;
}

}  // namespace

BenchReport bench_codec(const KvCache& kv, const Profile& profile, uint32_t chunk_tokens, int threads, int repeats,
                        const EncodeOptions& opt, const std::string& only_level, const std::string& decoders) {
  kv.validate();
  if (decoders != "both" && decoders != "current" && decoders != "reference")
    throw std::invalid_argument("bench codec: decoders must be both, current or reference");
  const bool current = decoders != "reference", reference = decoders != "current";
  BenchReport rep;
  rep.chunk_tokens = chunk_tokens;
  rep.tokens = kv.num_tokens();
  rep.values = kv.num_tokens() * kv.values_per_token();
  rep.threads = resolve_threads(threads);
  rep.decode_path = decode_path_name(active_decode_path());
  const size_t n_chunks = (kv.num_tokens() + chunk_tokens - 1) / chunk_tokens;
  const double fp16_mb = 2.0 * double(rep.values) / 1e6;
  struct Spec { std::string name, kind; Method m; int level; };
  std::vector<Spec> specs;
  EncodeOptions eo = opt;
  eo.profile_hash = profile.hash();
  for (size_t l = 0; l < profile.levels.size(); ++l)
    if (only_level.empty() || profile.levels[l].name == only_level)
      specs.push_back({profile.levels[l].name, "level", Method::Quant, int(l)});
  if (specs.empty()) profile.level_index(only_level);  // throws, naming the levels
  if (only_level.empty())
    for (Method m : {Method::Fp16, Method::Q8, Method::Q4, Method::ZstdFp16})
      specs.push_back({method_name(m), "baseline", m, 0});
  const uint32_t T = uint32_t(kv.num_tokens());
  CpuDecoder dec;
  dec.set_profile(profile);
  ReferenceCpuDecoder ref_dec(profile);
  const KvBuffer out = dec.allocate(kv.shape, Dtype::F16, T, 0, false, profile.rope_theta);
  const KvBuffer ref_out = dec.allocate(kv.shape, Dtype::F16, T, 0, false, profile.rope_theta);
  for (const Spec& sp : specs) {
    BenchEntry e;
    e.name = sp.name;
    e.kind = sp.kind;
    auto encode_set = [&](const EncodeOptions& o, int th) {
      std::vector<std::vector<uint8_t>> blobs(n_chunks);
      parallel_for(n_chunks, th, [&](size_t c) {
        const size_t b = c * chunk_tokens, en = std::min<size_t>(kv.num_tokens(), b + chunk_tokens);
        blobs[c] = encode_chunk(kv, b, en, uint32_t(b), sp.m, &profile, sp.level, o);
      });
      return blobs;
    };
    std::vector<std::vector<uint8_t>> blobs;
    double best = 1e30;
    for (int r = 0; r < std::min(repeats, 3); ++r) {
      const auto t0 = Clock::now();
      blobs = encode_set(eo, 1);
      best = std::min(best, seconds_since(t0));
    }
    e.encode_mbps_1t = fp16_mb / best;
    const std::vector<std::span<const uint8_t>> spans(blobs.begin(), blobs.end());
    const bool with_ref = reference && sp.m == Method::Quant;
    EncodeOptions eo2 = eo;  // format 2 as it was written: 4096 symbols per stream, its default
    eo2.blob_version = 2;
    eo2.symbols_per_stream = 4096;
    const auto ref_blobs = with_ref ? encode_set(eo2, 0) : std::vector<std::vector<uint8_t>>{};
    // Decode, alternating the previous decoder, the current one and the current one on all threads.
    const size_t shares = std::min<size_t>(n_chunks, size_t(rep.threads));
    std::vector<CpuDecoder> workers(shares);
    for (auto& w : workers) w.set_profile(profile);
    auto decode_all = [&] {
      parallel_for(shares, int(shares), [&](size_t w) {
        const size_t a = w * n_chunks / shares, b = (w + 1) * n_chunks / shares;
        workers[w].submit(std::span(spans).subspan(a, b - a), out.dest);
      });
    };
    double best_new = 1e30, best_ref = 1e30, best_all = 1e30;
    const std::vector<int> cpus = current && rep.threads > 1 ? allowed_cpus(size_t(rep.threads)) : std::vector<int>{};
    std::vector<double> best_core(cpus.size(), 1e30);
    CpuDecoder pinned;
    pinned.set_profile(profile);
    for (int r = 0; r < repeats; ++r) {
      if (with_ref) {
        const auto t0 = Clock::now();
        for (const auto& b : ref_blobs) ref_dec.decode(b, ref_out.dest);
        best_ref = std::min(best_ref, seconds_since(t0));
      }
      if (!current) continue;
      auto t0 = Clock::now();
      dec.submit(spans, out.dest);
      best_new = std::min(best_new, seconds_since(t0));
      t0 = Clock::now();
      decode_all();
      best_all = std::min(best_all, seconds_since(t0));
      for (size_t c = 0; c < cpus.size(); ++c) {
        const double s = seconds_on_cpu(cpus[c], [&] { pinned.submit(spans, out.dest); });
        if (s >= 0) best_core[c] = std::min(best_core[c], s);
      }
    }
    for (double b : best_core)
      if (b < 1e30) e.decode_mbps_1t_per_core.push_back(fp16_mb / b);
    if (!current) dec.submit(spans, out.dest);  // for the comparison below
    e.decode_mbps_1t = current ? fp16_mb / best_new : 0;
    e.decode_mbps_all = current ? fp16_mb / best_all : 0;
    LevelDecodeTables tables;
    if (sp.m == Method::Quant) tables = build_decode_tables(profile, sp.level);
    const Stats st = blob_set_stats(blobs, profile, sp.m == Method::Quant ? &tables : nullptr);
    e.bytes = st.bytes;
    e.bits_per_value = 8.0 * double(e.bytes) / double(rep.values);
    e.coder_efficiency = st.efficiency;
    e.side_info_fraction = st.side_fraction;
    if (with_ref) {
      const Stats rs = blob_set_stats(ref_blobs, profile, &tables);
      e.ref_bytes = rs.bytes;
      e.ref_coder_efficiency = rs.efficiency;
      e.ref_decode_mbps_1t = fp16_mb / best_ref;
      e.identical_to_reference = all_bytes(dec, out.dest) == all_bytes(dec, ref_out.dest);
    }
    rep.entries.push_back(std::move(e));
  }
  size_t fp16 = 0, q8 = 0;
  for (const auto& e : rep.entries) {
    if (e.name == "fp16") fp16 = e.bytes;
    if (e.name == "q8") q8 = e.bytes;
  }
  for (auto& e : rep.entries) {
    e.ratio_vs_fp16 = fp16 ? double(fp16) / double(e.bytes) : 0;
    e.ratio_vs_q8 = q8 ? double(q8) / double(e.bytes) : 0;
  }
  return rep;
}

}  // namespace kvstream::codec
