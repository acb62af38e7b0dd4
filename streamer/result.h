// StreamResult: what one fetch of a context did, in the same shape from `kvstream recv --json`
// and `kvstream simulate --json` (docs/PROTOCOL.md, "Result JSON").
//
// Contract: times are milliseconds since the request was sent. A chunk record has "fallback",
// "fallback_reason" and "fallback_bytes" only when the chunk fell back to text. quality.source says where the
// quality numbers come from: "measured" (model score against a reference KV cache) or "ladder"
// (the container's measured per-level quality, weighted by chunk tokens).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "streamer/controller.h"
#include "streamer/plan.h"

namespace kvstream::streamer {

struct ChunkRecord {
  size_t index = 0;
  std::string level;   // level name or "text"
  int option = kText;
  uint64_t bytes = 0;  // wire bytes of the chunk frame
  double request_ms = 0;
  double start_ms = 0;  // first byte arrived
  double end_ms = 0;    // last byte arrived
  double throughput_mbps = 0;  // bytes / (end - service start)
  double decode_ms = 0;        // decode or recompute worker time
  double ready_ms = 0;
  double est_mbps = 0;         // controller's estimate when it chose this chunk
  double lo_mbps = 0;          // adaptive: the pessimistic rate it planned on
  std::string rule;            // adaptive: which rule chose it ("mpc", "insured", "robust", "best-effort")
  // A hedged text chunk (also fetched at a KV level): "text" when its recompute made it, "hedge"
  // when its KV did; empty when not hedged. "rescue": a KV chunk recomputed from the manifest's
  // token ids because its KV was late (Decision::rescue_s); "upgrade" / "base": an upgraded chunk.
  std::string served_by;
  std::string served_level;    // the level the cache holds when served_by is "hedge" or "upgrade"
  // recv only: the chunk's blob failed to decode and it was fetched again as text and recomputed
  // ("text"; empty otherwise), or, when the receiver may leave chunks failed, could not be
  // recovered ("failed": its rows hold nothing), why, and the retry's wire bytes. level/bytes stay
  // the first fetch's.
  std::string fallback;
  std::string fallback_reason;
  uint64_t fallback_bytes = 0;
};

struct StreamResult {
  std::string context;
  std::string policy;
  double slo_ms = 0;
  double ttft_ms = 0;
  bool slo_met = false;
  uint64_t bytes = 0;  // every byte received (all frames)
  double last_byte_ms = 0;
  double first_token_ms = 0;  // time spent generating the first token
  double greedy_agreement = 0;
  double ppl_delta_pct = 0;
  std::string quality_source = "ladder";
  std::vector<ChunkRecord> chunks;
  std::string plan;               // levels as text, "q8,q8,text,..."
  double predicted_ttft_ms = -1;  // the controller's first prediction (adaptive)
  int first_token = -1;
  std::string trace;              // simulate: trace name
  std::string estimate_sources;   // what the first estimate came from ("prior", "handshake", ...)
  nlohmann::json to_json() const;
};

// Fills r.chunks from the controller's decisions and observed facts; busy_s / ready_s per chunk
// (seconds). Throughput = wire bytes / (last byte - service start), service start as the
// controller measures it.
void fill_chunks(StreamResult& r, const Controller& ctl, const std::vector<double>& busy_s,
                 const std::vector<double>& ready_s);

// Ladder-estimated quality of a plan: token-weighted agreement and ppl delta.
void ladder_quality(const StreamSpec& spec, const std::vector<int>& options, double& agreement,
                    double& ppl_delta_pct);

}  // namespace kvstream::streamer
