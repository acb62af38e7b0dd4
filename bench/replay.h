// Multi-turn replay: serves a workload's turns in arrival order against a real TieredStore (real
// memory tier, real files in a directory) and reports hit rates, modelled TTFT and bytes moved.
//
// Per turn of a session (history H = the tokens whose KV the session stored last turn, empty at
// first; request R = H + prompt):
// 1. Look-ahead (scheduler policy only): the keys of the next `lookahead` queued requests go to the
//    store; the prefetcher thread promotes the nearest ones from disk to memory; the replay waits
//    for it (prefetch happens while the request waits in the queue, off the request path).
// 2. store.get(R): a real lookup; a hit reuses the matched prefix of H.
// 3. Truncation (decoupled positional encoding): if |H| + |prompt| + |response| exceeds the model
//    window, the oldest ceil-multiple of truncate_ratio * window tokens of H are dropped; the kept
//    stored KV is reused at new positions (pre-RoPE keys are rotated where they now sit).
// 4. TTFT. Hit: disk read (disk hits only) + load (transfer + decode), overlapped or not with the
//    prefill of what was not reused (store/ttft_model.h: serial = disk + load + prefill;
//    layerwise = disk + the L-layer pipeline of load/L and prefill/L, L = pipeline_layers).
//    transfer = bytes * kv_scale / bandwidth: the chosen level's chunk bytes host->GPU at mem_bw;
//    a disk hit first reads the whole record (all levels) at disk_bw. decode = real measured CPU
//    time of the (single-threaded) ContextCodec::decode of the reused range (CPU time, so that
//    other processes on a shared machine do not inflate it; wall time is reported too); the model
//    assumes the decode runs on the host, so it can overlap the GPU's prefill.
//    prefill = tokens / prefill_rate. A hit in the shared tier (ReplayOptions::shared, e.g. Redis
//    below memory and disk) first fetches the chosen level's values of the reused chunks (the
//    tier stores one value per chunk and level, as a sender reads them): shared_rtt_s +
//    level bytes * kv_scale / shared_bw, serial in front of the load like the disk read. (This
//    replay reads the whole record, every level, to keep it locally where the policy lets it in;
//    the other levels are not on the request's path, and bytes_read_shared counts them all.) Both models are computed for every turn; `overlap` picks
//    the one reported as mean_ttft_ms.
//    Miss and the recompute-everything baseline: (kept history + prompt) / prefill_rate.
//    kv_scale scales stories260K's bytes to the model whose rates are given (default 409.6 =
//    Llama-2-7B fp16 KV bytes per token / stories260K fp32 KV bytes per token).
// 5. The model computes the session's new KV (real forward pass, pre-RoPE keys) and an async save
//    job (bounded SaveQueue) encodes it with every level and puts it, replacing the old entry. The
//    replay flushes the queue before the next request so results are deterministic; saving is not
//    counted in TTFT (it is off the critical path).
// hit_rate counts hits over turns that have a history (a session's first turn cannot hit).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "codec/progress.h"
#include "store/context_codec.h"
#include "store/kv_engine.h"
#include "store/lower_tier.h"
#include "store/policy.h"
#include "store/save_queue.h"
#include "store/ttft_model.h"
#include "bench/workload.h"

namespace kvstream::store {

struct ReplayOptions {
  PolicyKind policy = PolicyKind::Lru;
  uint64_t mem_bytes = 8ull << 20;
  uint64_t disk_bytes = 32ull << 20;
  std::string dir;              // disk tier directory; empty: a fresh temp dir, removed afterwards
  double prefill_rate = 4000;   // tokens/s of the modelled serving GPU
  double mem_bw = 25e9;         // bytes/s host memory -> GPU (PCIe 4.0 x16 class)
  double disk_bw = 3e9;         // bytes/s SSD -> host memory (NVMe class)
  double kv_scale = 409.6;      // modelled KV bytes per stories260K KV byte
  int level = 0;                // ContextCodec level decoded on a hit
  double truncate_ratio = 0.5;  // fraction of the window dropped per truncation
  size_t lookahead = 256;       // queued requests visible to the scheduler
  int chunk_tokens = 64;        // prefix-key chunk
  size_t save_queue = 8;
  Overflow overflow = Overflow::Block;
  bool fsync = true;
  bool verify_decode = true;    // check decoded tokens against the request
  bool per_turn = false;        // keep per-turn records in the result
  LoadOverlap overlap = LoadOverlap::Layerwise;  // TTFT model reported as mean_ttft_ms
  int pipeline_layers = 0;      // L of the layer-wise pipeline; 0: the stored model's layer count
  std::shared_ptr<LowerTier> shared;  // a shared tier below memory and disk (nullptr: two tiers)
  double shared_bw = 1.25e9;    // bytes/s shared tier -> host memory (10 GbE class)
  double shared_rtt_s = 2e-4;   // one request's round trip to the shared tier
  ProgressFn progress;          // stage "turns", one step per replayed turn (codec/progress.h)
};

struct ReplayTurn {
  int session = 0, turn = 0;
  size_t history = 0, prompt = 0, dropped = 0, reused = 0;
  std::string tier;  // "memory", "disk" or "miss"
  double ttft_ms = 0, recompute_ttft_ms = 0, decode_ms = 0;
  double ttft_serial_ms = 0, ttft_layerwise_ms = 0;  // both TTFT models (ttft_ms is the chosen one)
};

struct ReplayResult {
  std::string policy, codec, level;
  size_t turns = 0, eligible_turns = 0, hits_mem = 0, hits_disk = 0, hits_shared = 0, truncations = 0;
  double mean_ttft_ms = 0, recompute_mean_ttft_ms = 0;  // mean_ttft_ms: the chosen overlap model
  double mean_ttft_serial_ms = 0, mean_ttft_layerwise_ms = 0;
  std::string overlap;
  int pipeline_layers = 0;
  double mean_decode_ms = 0, mean_decode_wall_ms = 0;  // per hit: thread CPU time (used in TTFT), wall time
  uint64_t prefill_tokens_saved = 0, prefill_tokens_recompute = 0;
  uint64_t bytes_read_mem = 0, bytes_read_disk = 0, bytes_prefetched = 0, bytes_written_disk = 0;
  uint64_t bytes_read_shared = 0, shared_puts = 0, shared_errors = 0;
  uint64_t demotions = 0, dropped = 0, prefetched = 0, saves_dropped = 0;
  uint64_t mean_entry_bytes = 0;
  size_t prefetch_window = 0, eviction_window = 0;
  double wall_s = 0;
  std::vector<ReplayTurn> per_turn;
  double hit_rate() const { return eligible_turns ? double(hits_mem + hits_disk + hits_shared) / eligible_turns : 0; }
  nlohmann::json to_json(const ReplayOptions& o) const;
};

ReplayResult replay(const Workload& w, const KvEngine& engine, const ContextCodec& codec,
                    const ReplayOptions& opt);

}  // namespace kvstream::store
