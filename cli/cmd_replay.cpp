// `kvstream replay`: replays a multi-turn workload against the hierarchical store (real memory and
// disk tiers, real files) and reports hit rates, modelled TTFT vs recompute, bytes moved.
// Without --profile, a codec profile is built from the text file's calibration range (disjoint
// from the workload's text), or --codec raw stores fp32 KV. Logic: bench/replay.h.
// Example: kvstream replay --workload w.json --policy scheduler --mem-bytes 4MB --disk-bytes 12MB
//            --profile p.kvprofile --prefill-rate 4000 --json
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/command_registry.h"
#include "cli/progress.h"
#include "codec/profile.h"
#include "model/kv_quality.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "store/redis_tier.h"
#include "bench/replay.h"

KVSTREAM_COMMAND("replay", "Replay multi-turn conversations against the hierarchical KV store", ([](CLI::App& sub) {
  struct Opts {
    std::string workload, policy = "lru", profile, codec = "container", level;
    std::string model = "data/models/stories260K/stories260K.bin";
    std::string tokenizer = "data/models/stories260K/tok512.bin";
    std::string text = "data/text/tinystories_val.txt";
    std::string overflow = "block", load_overlap = "layerwise", redis;
    double shared_rtt_ms = 0.2;
    kvstream::store::ReplayOptions r;
    bool json = false, no_fsync = false;
  };
  auto o = std::make_shared<Opts>();
  sub.add_option("--workload", o->workload, "workload JSON (kvstream workload gen)")->required();
  sub.add_option("--policy", o->policy, "lru | fifo | scheduler")->required();
  sub.add_option("--mem-bytes", o->r.mem_bytes, "memory tier capacity (bytes; KB/MB suffixes ok)")
      ->required()->transform(CLI::AsSizeValue(false));
  sub.add_option("--disk-bytes", o->r.disk_bytes, "disk tier capacity (bytes; KB/MB suffixes ok)")
      ->required()->transform(CLI::AsSizeValue(false));
  sub.add_option("--profile", o->profile, "codec profile (.kvprofile); default: build one from --text-file");
  sub.add_option("--codec", o->codec, "container (codec .kvs, all levels + text) | raw (fp32)");
  sub.add_option("--level", o->level, "ladder level decoded on a hit, name or index (default: the first)");
  sub.add_option("--prefill-rate", o->r.prefill_rate, "modelled prefill tokens/s (4000: a 7B-class GPU)");
  sub.add_option("--mem-bw", o->r.mem_bw, "modelled host memory -> GPU bytes/s");
  sub.add_option("--disk-bw", o->r.disk_bw, "modelled SSD -> memory bytes/s");
  sub.add_option("--kv-scale", o->r.kv_scale, "modelled KV bytes per stored byte (409.6 = 7B fp16 / stories260K fp32)");
  sub.add_option("--load-overlap", o->load_overlap,
                 "TTFT model of a hit reported as mean_ttft_ms: layerwise (load layer l+1 while layer l "
                 "computes) | none (load, then prefill); both are always in the JSON");
  sub.add_option("--pipeline-layers", o->r.pipeline_layers, "layers L of the layer-wise pipeline (0 = the model's)");
  sub.add_option("--lookahead", o->r.lookahead, "queued requests the scheduler sees");
  sub.add_option("--truncate-ratio", o->r.truncate_ratio, "fraction of the window dropped on overflow");
  sub.add_option("--save-queue", o->r.save_queue, "async save queue bound");
  sub.add_option("--overflow", o->overflow, "save queue full: block | drop-oldest");
  sub.add_option("--dir", o->r.dir, "disk tier directory (default: a temp dir, removed afterwards)");
  sub.add_option("--redis", o->redis,
                 "a shared Redis Cluster tier below memory and disk: redis://HOST:PORT[,...][/TENANT] (use a fresh "
                 "tenant per run; default: none, two tiers)");
  sub.add_option("--shared-bw", o->r.shared_bw, "modelled shared tier -> memory bytes/s (default 1.25e9: 10 GbE)");
  sub.add_option("--shared-rtt-ms", o->shared_rtt_ms, "modelled round trip to the shared tier (default 0.2 ms)");
  sub.add_option("--model", o->model, "llama2.c checkpoint");
  sub.add_option("--tokenizer", o->tokenizer, "llama2.c tokenizer");
  sub.add_option("--text-file", o->text, "text for building a profile when --profile is not given");
  sub.add_flag("--no-fsync", o->no_fsync, "skip fsync on disk-tier writes");
  sub.add_flag("--per-turn", o->r.per_turn, "include every turn in the JSON");
  sub.add_flag("--json", o->json, "print JSON");
  return kvstream::cli::Action([o] {
    using namespace kvstream;
    o->r.policy = store::parse_policy(o->policy);
    o->r.overflow = store::parse_overflow(o->overflow);
    o->r.overlap = store::parse_load_overlap(o->load_overlap);
    o->r.fsync = !o->no_fsync;
    o->r.shared_rtt_s = o->shared_rtt_ms / 1e3;
    if (!o->redis.empty()) o->r.shared = std::make_shared<store::RedisTier>(store::parse_redis_uri(o->redis));
    const auto w = store::load_workload(o->workload);
    const auto m = model::Model::load(o->model);
    const auto tok = model::Tokenizer::load(o->tokenizer);
    std::unique_ptr<store::ContextCodec> codec;
    if (o->codec == "raw") {
      codec = store::make_raw_codec(m.kv_shape(), m.name(), m.config().rope_theta);
    } else if (o->codec == "container") {
      codec::Profile p;
      if (!o->profile.empty()) {
        p = codec::load_profile(o->profile);
      } else {
        std::fprintf(stderr, "replay: no --profile; building one from %s (calibration range)\n", o->text.c_str());
        kvstream::cli::Progress progress("replay: profile", !o->json);
        model::ProfileOptions po;
        po.text_name = o->text;
        po.progress = progress.fn();
        p = model::build_profile(m, tok, model::read_text_file(o->text), po);
      }
      codec = store::make_container_codec(std::move(p), 64, 1);
    } else {
      throw std::invalid_argument("--codec must be container or raw");
    }
    if (!o->level.empty()) {
      int found = -1;
      for (int i = 0; i < codec->num_levels(); ++i)
        if (codec->level_name(i) == o->level || std::to_string(i) == o->level) found = i;
      if (found < 0) throw std::invalid_argument("no level '" + o->level + "' in the codec ladder");
      o->r.level = found;
    }
    const auto engine = store::make_model_engine(m, tok);
    kvstream::cli::Progress progress("replay", !o->json);
    o->r.progress = progress.fn();
    const auto res = store::replay(w, *engine, *codec, o->r);
    progress.finish();
    if (o->json) {
      std::cout << res.to_json(o->r).dump(2) << "\n";
      return 0;
    }
    std::printf("policy %s: %zu turns (%zu with history), hit rate %.1f%% (memory %.1f%%, disk %.1f%%, shared %.1f%%)\n",
                res.policy.c_str(), res.turns, res.eligible_turns, 100 * res.hit_rate(),
                100.0 * res.hits_mem / std::max<size_t>(1, res.eligible_turns),
                100.0 * res.hits_disk / std::max<size_t>(1, res.eligible_turns),
                100.0 * res.hits_shared / std::max<size_t>(1, res.eligible_turns));
    std::printf("TTFT model %s (%d layers): serial %.2f ms, layerwise %.2f ms\n", res.overlap.c_str(),
                res.pipeline_layers, res.mean_ttft_serial_ms, res.mean_ttft_layerwise_ms);
    std::printf("mean TTFT %.2f ms vs recompute %.2f ms (%.1f%% lower); prefill tokens saved %llu of %llu\n",
                res.mean_ttft_ms, res.recompute_mean_ttft_ms,
                res.recompute_mean_ttft_ms > 0 ? 100 * (1 - res.mean_ttft_ms / res.recompute_mean_ttft_ms) : 0.0,
                (unsigned long long)res.prefill_tokens_saved, (unsigned long long)res.prefill_tokens_recompute);
    std::printf("bytes read: memory %llu, disk %llu; prefetched %llu; written to disk %llu; %zu truncations\n",
                (unsigned long long)res.bytes_read_mem, (unsigned long long)res.bytes_read_disk,
                (unsigned long long)res.bytes_prefetched, (unsigned long long)res.bytes_written_disk, res.truncations);
    return 0;
  });
}));
