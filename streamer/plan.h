// The receiver pipeline model and the plan search shared by the live receiver, the simulator and
// the oracle. Pure computation: no clocks, no sockets.
//
// Contract: a context is a list of chunks; each chunk is fetched at one option: a codec level
// (index into StreamSpec::levels) or kText (its token ids, recomputed by the model). The pipeline
// is: the link delivers chunks in order, back to back; one decode worker decodes KV chunks in
// order of arrival; one compute worker recomputes text chunks, and text chunk i may start only
// once every chunk < i is ready (its attention needs their KV). TTFT = the time every chunk is
// ready, plus the first token's generation. Times are seconds from the request.
//
// PlanSearch maximises sum(tokens * agreement(option)) subject to predicted TTFT <= deadline; when
// no plan fits it returns the plan with the smallest predicted TTFT (best effort). It is exact
// (branch and bound) within a node budget, and falls back to greedy + coordinate ascent beyond it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace kvstream::streamer {

constexpr int kText = -1;  // the "send text, recompute" option

struct LevelSpec {
  uint16_t id = 0;
  std::string name;
  double agreement = 1.0;     // measured top-1 agreement (ladder quality)
  double ppl_delta_pct = 0.0;
};
struct ChunkSpec {
  uint32_t tokens = 0;
  uint64_t text_bytes = 0;
  std::vector<uint64_t> level_bytes;  // one per level
};
struct StreamSpec {
  std::vector<LevelSpec> levels;
  std::vector<ChunkSpec> chunks;
  uint64_t total_tokens() const;
  // Index of the level named `name` or with numeric id `name`; -1 if none.
  int find_level(const std::string& name) const;
};

// Bytes on the wire for a chunk at an option (blob + CHUNK_DATA framing): header 16, index 4,
// level 2, status 1, the sender's link report 21, blob length 4 (docs/PROTOCOL.md, version 3).
constexpr uint64_t kChunkFrameOverhead = 16 + 4 + 2 + 1 + 21 + 4;
uint64_t wire_bytes(const StreamSpec& s, size_t chunk, int option);
double option_agreement(const StreamSpec& s, int option);
double option_ppl_delta(const StreamSpec& s, int option);

// Compute-side costs (seconds).
struct CostModel {
  double prefill_rate = 0;              // tokens/s for text recompute; 0 = recompute_s_per_token
  double recompute_s_per_token = 2e-4;  // used (and updated from measurements) when rate is 0
  std::vector<double> decode_s_per_token;  // per level; empty or missing = default_decode
  double default_decode_s_per_token = 2e-5;
  double first_token_s = 0.0;
  std::vector<std::vector<double>> decode_s_exact;  // [chunk][level] when known (the oracle)
  double decode_s(const StreamSpec& s, size_t chunk, int option) const;
  double recompute_s(const StreamSpec& s, size_t chunk) const;
};

// How the plan search predicts transfers: given the time the link could start a chunk and its
// bytes, when does its last byte arrive (and its first)? A throughput estimate or a real trace.
struct TransferModel {
  // Returns the arrival time of the last byte of `bytes` whose service starts at `start`.
  std::function<double(double start, uint64_t bytes)> finish;
  double rtt_s = 0;  // request -> first byte latency for a chunk requested on an idle link
  // Optional exact mode for a link that stays backlogged (every chunk requested at once, the
  // oracle): arrival time of the last byte once `cum_bytes` chunk bytes in total were sent.
  // When set, advance() uses it (with PipelineState::link_bytes) instead of finish().
  std::function<double(uint64_t cum_bytes)> finish_cumulative;
};
TransferModel constant_rate_model(double bytes_per_s, double rtt_s);
// A link that delivers nothing in [outage_from, outage_to), and bytes_per_s otherwise.
TransferModel outage_rate_model(double bytes_per_s, double rtt_s, double outage_from, double outage_to);

// What is already known about each chunk when planning mid-stream (negative = unknown).
struct ChunkFacts {
  int option = kText;
  bool requested = false;
  double request_t = -1;
  double first_byte_t = -1;
  uint64_t first_bytes = 0;   // bytes of the chunk's frame already received at first_byte_t
  double last_byte_t = -1;
  double throughput_bps = 0;  // measured over the chunk's arrival (set with last_byte_t)
  double ready_t = -1;
};

// Pipeline state after the chunks before `next` (the incremental unit of the search).
struct PipelineState {
  double link_free = 0;     // when the link delivered the last byte of the previous chunk
  double decode_free = 0;   // when the decode worker is free
  double compute_free = 0;  // when the compute worker is free
  double prefix_ready = 0;  // when all chunks so far are ready
  double now = 0;           // unknown future events happen no earlier than this
  uint64_t link_bytes = 0;  // chunk bytes sent so far (TransferModel::finish_cumulative)
};

// Advances the state by one chunk fetched at `option`, using facts where known.
// `earliest_start` is the earliest the link can start this chunk (request time + rtt).
PipelineState advance(const PipelineState& st, const StreamSpec& s, const CostModel& c,
                      const TransferModel& tm, size_t chunk, int option, double earliest_start,
                      const ChunkFacts* facts, double* ready_out = nullptr);

struct PlanResult {
  std::vector<int> options;  // for chunks [first, n)
  double predicted_ttft = 0;
  double quality = 0;        // sum over planned chunks of tokens * agreement(option)
  bool feasible = false;
  size_t nodes = 0;
};

struct PlanSearch {
  const StreamSpec* spec = nullptr;
  const CostModel* cost = nullptr;
  const TransferModel* transfer = nullptr;
  std::vector<int> allowed;   // options the search may use (levels and/or kText)
  std::vector<int> first_allowed;  // if not empty: the options chunk `first` may use (a subset)
  size_t node_budget = 200000;
  // Plans chunks [first, n) after `st`. Chunk `first` may start no earlier than first_start; later
  // chunks follow back to back (pipelined requests).
  PlanResult run(const PipelineState& st, size_t first, double first_start, double deadline) const;
};

// Evaluates a complete plan from scratch (no facts): the per-chunk timeline the pipeline model
// predicts. Used by the simulator's report and by tests.
struct PlanTimeline {
  std::vector<double> start, end, ready;
  double ttft = 0;
};
PlanTimeline evaluate_plan(const StreamSpec& s, const CostModel& c, const TransferModel& tm,
                           const std::vector<int>& options, double first_start);

}  // namespace kvstream::streamer
