// The receiver (`kvstream recv`): fetches one context's KV cache from a sender, choosing each
// chunk's level (or text) with the Controller, decoding chunk i on a decode thread while chunk i+1
// is on the wire, recomputing text chunks with the model on a compute thread, and generating the
// first token.
//
// Contract: receive() returns only with the complete, verified KV cache or throws kvstream::Error
// with a clear message and its code (unknown_context, closed, stalled, timeout, protocol for a
// malformed frame or checksum mismatch, cancelled, auth, resource_exhausted for a budget, a sender
// ERROR's mapped code): it never returns a partial or wrong cache (but see allow_failed_chunks) and
// never hangs (connect, stall and total timeouts). With a key it authenticates as `tenant` and
// requires the sender to prove the same key (AUTH_OK) before it reads anything else; with TLS it
// verifies the sender's certificate. It does not trust the sender: the manifest must fit the
// model's window (with a model), and the KV cache, the profile and every frame must fit
// memory_budget_bytes before they are allocated. A KV chunk whose blob fails to decode (blob
// CRC, CorruptBlob, wrong positions) is fetched once more as text and recomputed with the model:
// a warning goes to on_warning and the chunk's record says "fallback": "text" and why; without a
// model, or if the text blob fails too, the fetch fails with a clear error (at most one retry per
// chunk); with allow_failed_chunks such a chunk is instead reported failed (its record says
// "fallback": "failed" and why, its rows stay zero) and the fetch goes on. The cache's token ids
// are the manifest's for every chunk, whatever level it came at. With max_tokens only the chunks
// holding the context's first max_tokens tokens are fetched (the outcome's cache holds whole
// chunks). on_rows sees each chunk's final rows before the chunk counts as ready (an embedding
// copies them into its own layout there). Time 0 = the TCP connection established (before TLS
// and HELLO). With prefill_rate > 0 text
// recompute (and the first token) is held to that many tokens per second. Without a model, text
// is never requested and TTFT = the KV cache complete.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <optional>

#include "codec/kv_cache.h"
#include "codec/profile.h"
#include "model/model.h"
#include "streamer/controller.h"
#include "streamer/result.h"
#include "streamer/wire.h"  // Manifest
#include "streamer/tls_config.h"

namespace kvstream::streamer {

class ProfileCache;

struct ReceiverOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string context;
  double slo_s = 1.0;
  Policy policy;
  ControllerConfig controller;      // prior_mbps, safety, ...; slo/rtt/prefill filled in here
  double prefill_rate = 0;          // tokens/s emulated for text recompute; 0 = real compute time
  const model::Model* model = nullptr;
  std::string profile_dir;          // cache of profiles by hash (<hash>.kvprofile); empty = memory only
  std::shared_ptr<ProfileCache> profiles;  // a node's profiles in memory, shared by fetches (else profile_dir is loaded)
  // File of remembered link estimates per sender (streamer/link_memory.h): read before the fetch
  // (the first estimate starts from it, weighed by its age), updated after it. Empty = none.
  std::string link_memory;
  int32_t query_token = 1;          // fed after the context to generate the first token (BOS)
  double connect_timeout_s = 5;
  double stall_timeout_s = 5;       // no byte from the sender for this long while waiting -> error
  double total_timeout_s = 120;
  uint32_t max_tokens = 0;          // fetch only the chunks holding the first max_tokens tokens (0 = all)
  bool allow_failed_chunks = false; // a chunk that cannot be decoded or recovered fails alone
  // Polled every 20 ms; true -> the fetch stops with ErrorCode::kCancelled. May be empty.
  std::function<bool()> cancelled;
  // Called on the I/O thread once the manifest (after max_tokens) and the profile are known, before
  // any chunk is decoded; a kvstream::Error it throws stops the fetch with that error. May be empty.
  std::function<void(const Manifest&, const codec::Profile&)> on_start;
  // Called on a worker thread once the chunk's tokens [begin, begin + n) are final, as rows
  // src_row.. of `src` (keys post-RoPE), before the chunk counts as ready; it may read those rows
  // only. May be empty. With on_rows (or without keep_cache) the controller's upgrades are not
  // fetched: rows handed over are final.
  std::function<void(size_t chunk, const KvCache& src, uint32_t src_row, uint32_t begin, uint32_t n)> on_rows;
  // false: no KV cache is assembled (the outcome's kv holds the token ids, no rows): the chunks
  // reach on_rows only. Needs model == nullptr.
  bool keep_cache = true;
  std::string tenant;                 // authenticate as this tenant (with key)
  std::vector<uint8_t> key;           // the tenant's secret; empty = no authentication (insecure sender)
  std::optional<TlsClientConfig> tls; // TLS to the sender (verifies its certificate)
  uint64_t memory_budget_bytes = 512ull << 20;  // KV cache + profile + the frame being read
  std::function<void(const ChunkRecord&)> on_chunk;  // live progress (called on the I/O thread)
  std::function<void(const std::string&)> on_warning;  // e.g. a chunk falling back to text (I/O thread)
};

struct ReceiveOutcome {
  StreamResult result;
  KvCache kv;              // the assembled cache (post-RoPE keys, the context's token ids)
  std::shared_ptr<const codec::Profile> profile;  // the profile its KV chunks were decoded with
  bool profile_fetched = false;
  double rtt_s = 0;
};

ReceiveOutcome receive(const ReceiverOptions& opt);

// Quality of an assembled cache against the reference (original) cache: greedy-continue
// `continuation` tokens from the reference after query_token, then teacher-force [query] + that
// continuation on both caches and compare top-1 agreement and perplexity (model.score).
void measure_quality(const model::Model& m, const KvCache& reference, const KvCache& received,
                     int32_t query_token, int continuation, double& agreement, double& ppl_delta_pct);

}  // namespace kvstream::streamer
