#include "codec/bench.h"

#include <algorithm>
#include <chrono>

#include "codec/thread_pool.h"

namespace kvstream::codec {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

BenchReport bench_codec(const KvCache& kv, const Profile& profile, uint32_t chunk_tokens, int threads,
                        int repeats, const EncodeOptions& opt) {
  kv.validate();
  BenchReport rep;
  rep.chunk_tokens = chunk_tokens;
  rep.tokens = kv.num_tokens();
  rep.values = kv.num_tokens() * kv.values_per_token();
  rep.threads = resolve_threads(threads);
  const size_t n_chunks = (kv.num_tokens() + chunk_tokens - 1) / chunk_tokens;
  const double fp16_mb = 2.0 * double(rep.values) / 1e6;
  struct Spec { std::string name, kind; Method m; int level; };
  std::vector<Spec> specs;
  EncodeOptions eo = opt;
  eo.profile_hash = profile.hash();
  for (size_t l = 0; l < profile.levels.size(); ++l)
    specs.push_back({profile.levels[l].name, "level", Method::Quant, int(l)});
  for (Method m : {Method::Fp16, Method::Q8, Method::Q4, Method::ZstdFp16})
    specs.push_back({method_name(m), "baseline", m, 0});
  for (const Spec& sp : specs) {
    BenchEntry e;
    e.name = sp.name;
    e.kind = sp.kind;
    std::vector<std::vector<uint8_t>> blobs(n_chunks);
    auto encode_all = [&](int th) {
      parallel_for(n_chunks, th, [&](size_t c) {
        const size_t b = c * chunk_tokens, en = std::min<size_t>(kv.num_tokens(), b + chunk_tokens);
        blobs[c] = encode_chunk(kv, b, en, uint32_t(b), sp.m, &profile, sp.level, eo);
      });
    };
    double best = 1e30;
    for (int r = 0; r < repeats; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      encode_all(1);
      best = std::min(best, seconds_since(t0));
    }
    e.encode_mbps_1t = fp16_mb / best;
    LevelDecodeTables tables;
    if (sp.m == Method::Quant) tables = build_decode_tables(profile, sp.level);
    KvCache out(kv.shape, kv.model_name, kv.rope_theta, false);
    out.resize(kv.num_tokens());
    auto decode_all = [&](int th) {
      parallel_for(n_chunks, th, [&](size_t c) {
        decode_chunk(blobs[c], &profile, out, sp.m == Method::Quant ? &tables : nullptr);
      });
    };
    for (int th : {1, rep.threads}) {
      best = 1e30;
      for (int r = 0; r < repeats; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        decode_all(th);
        best = std::min(best, seconds_since(t0));
      }
      (th == 1 ? e.decode_mbps_1t : e.decode_mbps_all) = fp16_mb / best;
    }
    double ideal = 0, coded = 0;
    size_t side = 0;
    for (const auto& b : blobs) {
      const BlobStats st = blob_stats(b, &profile);
      e.bytes += st.bytes;
      side += st.side_info_bytes;
      ideal += st.ideal_bits;
      coded += st.coded_bits;
    }
    e.bits_per_value = 8.0 * double(e.bytes) / double(rep.values);
    e.coder_efficiency = coded > 0 ? ideal / coded : 1.0;
    e.side_info_fraction = double(side) / double(e.bytes);
    rep.entries.push_back(std::move(e));
  }
  size_t fp16 = 0, q8 = 0;
  for (const auto& e : rep.entries) {
    if (e.name == "fp16") fp16 = e.bytes;
    if (e.name == "q8") q8 = e.bytes;
  }
  for (auto& e : rep.entries) {
    e.ratio_vs_fp16 = double(fp16) / double(e.bytes);
    e.ratio_vs_q8 = double(q8) / double(e.bytes);
  }
  return rep;
}

}  // namespace kvstream::codec
