#include "bench/codec_bench.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <thread>

#include "bench/bench_reference.h"
#include "bench/stats.h"
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

using kvstream::bench::median;

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

// Pins the calling thread to one CPU; false when it cannot be pinned.
bool pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}

// Threads pinned to `cpus`, released together, each timing its own work(k) (k = its index): the
// seconds each took while the others ran, i.e. what the machine gives independent work on all
// cores at once (empty when a thread cannot be pinned). Thread start, exit and join are outside
// the timings.
template <class Work>
std::vector<double> seconds_on_cpus_together(const std::vector<int>& cpus, Work&& work) {
  std::atomic<size_t> ready{0};
  std::atomic<bool> go{false}, failed{false};
  std::vector<double> took(cpus.size());
  std::vector<std::thread> ts;
  for (size_t k = 0; k < cpus.size(); ++k)
    ts.emplace_back([&, k] {
      if (!pin_to_cpu(cpus[k])) failed.store(true);
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
      const auto t0 = Clock::now();
      if (!failed.load()) work(k);
      took[k] = seconds_since(t0);
    });
  while (ready.load() < cpus.size()) std::this_thread::yield();
  go.store(true);
  for (auto& t : ts) t.join();
  return failed.load() ? std::vector<double>{} : took;
}

// Seconds `work` takes on a thread pinned to `cpu` (negative when it cannot be pinned).
template <class Work>
double seconds_on_cpu(int cpu, Work&& work) {
  const std::vector<double> s = seconds_on_cpus_together({cpu}, [&](size_t) { work(); });
  return s.empty() ? -1 : s[0];
}

// What the current decoder's timing loop measures (seconds, best of the repetitions).
struct DecodeTimes {
  double one = 1e30, all = 1e30, all_cold = 1e30, together = 1e30;
  std::vector<double> core;  // per allowed CPU (threads > 1)
  std::vector<double> scaling, efficiency, vs_together;  // per repetition
};

// One repetition of the current decoder with threads > 1: the pool parked, one pinned thread per
// core in turn, the same decode on every core at once (own decoders and outputs), one thread
// (the caller), then all threads twice (cold: workers asleep; warm: right after).
class MultiCoreTimer {
 public:
  MultiCoreTimer(const Profile& profile, const KvCache& kv, size_t n_chunks, int threads, std::vector<int> cpus)
      : n_chunks_(n_chunks), cpus_(std::move(cpus)), workers_(std::min<size_t>(n_chunks, size_t(threads))),
        solo_(std::max<size_t>(1, cpus_.size())) {
    for (auto& w : workers_) w.set_profile(profile);
    for (auto& d : solo_) {
      d.set_profile(profile);
      outs_.push_back(d.allocate(kv.shape, Dtype::F16, uint32_t(kv.num_tokens()), 0, false, profile.rope_theta));
    }
  }
  void repetition(std::span<const std::span<const uint8_t>> spans, CpuDecoder& dec, const KvDest& out, DecodeTimes& t) {
    park_workers();
    double fastest = 1e30, rate_sum = 0;
    t.core.resize(cpus_.size(), 1e30);
    for (size_t c = 0; c < cpus_.size(); ++c) {
      const double s = seconds_on_cpu(cpus_[c], [&] { solo_[0].submit(spans, outs_[0].dest); });
      if (s < 0) continue;
      t.core[c] = std::min(t.core[c], s);
      fastest = std::min(fastest, s);
      rate_sum += 1 / s;
    }
    // the contexts decoded at once, as one context's seconds at their summed rate
    double together = -1;
    if (cpus_.size() > 1) {
      double rate = 0;
      for (double s : seconds_on_cpus_together(cpus_, [&](size_t k) { solo_[k].submit(spans, outs_[k].dest); }))
        rate += 1 / s;
      if (rate > 0) together = 1 / rate;
    }
    if (together > 0) t.together = std::min(t.together, together);
    auto t0 = Clock::now();
    dec.submit(spans, out);
    t.one = std::min(t.one, seconds_since(t0));
    t0 = Clock::now();
    decode_all(spans, out);
    t.all_cold = std::min(t.all_cold, seconds_since(t0));
    t0 = Clock::now();
    decode_all(spans, out);
    const double warm = seconds_since(t0);
    t.all = std::min(t.all, warm);
    if (fastest < 1e30) {
      t.scaling.push_back(fastest / warm);
      t.efficiency.push_back(1 / warm / rate_sum);
    }
    if (together > 0) t.vs_together.push_back(together / warm);
  }

 private:
  // Each thread decodes a contiguous share of the chunks in one submit: the kernel decodes up to
  // 4 chunks' groups side by side, so one chunk per call would halve its speed.
  void decode_all(std::span<const std::span<const uint8_t>> spans, const KvDest& out) {
    const size_t shares = workers_.size();
    parallel_for(shares, int(shares), [&](size_t w) {
      const size_t a = w * n_chunks_ / shares, b = (w + 1) * n_chunks_ / shares;
      workers_[w].submit(spans.subspan(a, b - a), out);
    });
  }
  size_t n_chunks_;
  std::vector<int> cpus_;
  std::vector<CpuDecoder> workers_, solo_;
  std::vector<KvBuffer> outs_;
};

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
  // Rows out of cache: a destination of at least kFarBytes whose next T rows each repetition writes.
  constexpr double kFarBytes = 64.0 * 1048576;  // twice a 32 MB L3
  const uint32_t far_passes = uint32_t(std::max(1.0, std::ceil(kFarBytes / (fp16_mb * 1e6))));
  const KvBuffer far = dec.allocate(kv.shape, Dtype::F16, far_passes * T, 0, false, profile.rope_theta);
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
    // Decode, alternating the previous decoder, the current one on one thread and on all threads.
    DecodeTimes t;
    std::unique_ptr<MultiCoreTimer> multi;
    if (current && rep.threads > 1)
      multi = std::make_unique<MultiCoreTimer>(profile, kv, n_chunks, rep.threads, allowed_cpus(size_t(rep.threads)));
    double best_ref = 1e30, best_far = 1e30;
    for (int r = 0; r < repeats; ++r) {
      if (with_ref) {
        const auto t0 = Clock::now();
        for (const auto& b : ref_blobs) ref_dec.decode(b, ref_out.dest);
        best_ref = std::min(best_ref, seconds_since(t0));
      }
      if (multi) {
        multi->repetition(spans, dec, out.dest, t);
      } else if (current) {
        const auto t0 = Clock::now();
        dec.submit(spans, out.dest);
        t.one = std::min(t.one, seconds_since(t0));
      }
      if (current) {
        const KvDest rows = far.dest.offset_rows(uint32_t(r) % far_passes * T);
        const auto t0 = Clock::now();
        dec.submit(spans, rows);
        best_far = std::min(best_far, seconds_since(t0));
      }
    }
    for (double b : t.core)
      if (b < 1e30) e.decode_mbps_1t_per_core.push_back(fp16_mb / b);
    if (!current) dec.submit(spans, out.dest);  // for the comparison below
    const auto mbps = [&](double s) { return current && s < 1e30 ? fp16_mb / s : 0.0; };
    e.decode_mbps_1t = mbps(t.one);
    e.decode_mbps_1t_far_rows = mbps(best_far);
    e.decode_mbps_all = multi ? mbps(t.all) : e.decode_mbps_1t;
    e.decode_mbps_all_cold = multi ? mbps(t.all_cold) : e.decode_mbps_1t;
    e.decode_mbps_together = t.together < 1e30 ? fp16_mb / t.together : 0;
    e.scaling_vs_fastest_core_median = median(t.scaling);
    e.efficiency_vs_cores_median = median(t.efficiency);
    e.vs_together_median = median(t.vs_together);
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
