// The receiver's decode pipeline: a decode thread (codec blobs -> KV rows) and a compute thread
// (text chunks -> model recompute given the KV of every earlier chunk), writing disjoint rows of
// one pre-sized KvCache. Each finished chunk is reported through a callback with its ready time
// and the worker time it took.
//
// Contract: submit() jobs as they arrive (a chunk may be submitted again as text after its KV blob
// was reported corrupt). A blob is checked against the chunk it claims to be (positions, token
// count, text vs KV, and the ids of a blob that carries them against the context's token ids when
// given) before any row is written. A KV blob that fails to decode (CRC, CorruptBlob, wrong positions) is reported
// through on_corrupt when one is given (no row of the cache is touched, the chunk stays not
// ready, the pipeline keeps going); any other failure (or a KV failure without on_corrupt, or any
// text failure) stops the pipeline and is reported once through on_error (the cache is then not
// to be used). A text chunk is recomputed once every earlier chunk is ready; among queued text
// chunks the lowest index goes first. With prefill_rate > 0 a recompute is held to tokens / rate
// seconds. The assembled cache's token ids are the given context ids for every chunk (or, without
// them, the recomputed chunks' ids and 0 elsewhere). stop() joins both threads; the destructor
// calls it.
//
// Hedged chunks (controller, issue 14): a text chunk may also be fetched at a KV level as insurance
// (hedge(chunk, deadline)). Its text stays the first choice: the recompute runs if it can start by
// the deadline (or nothing else is in hand). Its KV blob is decoded when it arrives but held, and
// used only once the deadline has passed without the recompute having started; then the chunk is
// ready from the KV (reported with busy = the decode time) and its text job, if any, is dropped.
// Whichever path starts first owns the chunk: a chunk is written and reported done exactly once.
// A hedge's KV blob that fails to decode only cancels the hedge (no on_corrupt).
//
// Rescues (controller, issue 14): a chunk may be given a rescue window (rescue(chunk, at, latest)).
// If, at the first moment in [at, latest] when it is the first chunk not ready (every earlier one
// is ready, so its recompute can start), nothing has claimed it yet (no KV blob of it decoded, no
// text job of it started), the compute thread recomputes it from the context's token ids (which
// the pipeline then needs, with a model), and its KV blob or text, whenever it comes, is dropped. rescued(chunk) says which path served it.
//
// Upgrades (controller, issue 14): a KV chunk may also be fetched at a better level, after every
// other request (upgrade(chunk)). Its blob is decoded into a held buffer (on_held is called), and
// apply_upgrades() copies every held upgrade into the cache; call it only once every chunk is
// done (no worker writes then). An upgrade that fails to decode is dropped.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "codec/kv_cache.h"
#include "codec/profile.h"
#include "model/model.h"

namespace kvstream::streamer {

class DecodePipeline {
 public:
  struct Chunk {
    uint32_t token_begin = 0, tokens = 0;
  };
  using Done = std::function<void(size_t chunk, double busy_s)>;
  using Error = std::function<void(const std::string&)>;
  using Corrupt = std::function<void(size_t chunk, const std::string& reason)>;
  // A chunk's tokens [begin, begin + n) are final: rows src_row.. of `src` (called on the worker,
  // before Done; `src` is the assembled cache, or without keep_rows a scratch cache of the chunk).
  using Rows = std::function<void(size_t chunk, const KvCache& src, uint32_t src_row, uint32_t begin, uint32_t n)>;
  // Decode tables per profile level; null entries are built on first use.
  using Tables = std::vector<std::shared_ptr<const codec::LevelDecodeTables>>;
  // Every level's decode tables of `p` (what a node keeps with a cached profile).
  static Tables build_tables(const codec::Profile& p);

  // `profile` must stay alive; `model` may be null (then text chunks are an error). `token_ids`:
  // the context's ids (one per token of all chunks) or empty. `on_corrupt` may be empty. `tables`:
  // the profile's decode tables built ahead of time (a node keeps them with its profiles, so that
  // no chunk's decode pays for them), or empty. `on_rows` may be empty. Without keep_rows no cache
  // is assembled (take() returns the token ids and no rows; the chunks reach on_rows only), which
  // needs model == nullptr (std::invalid_argument otherwise).
  DecodePipeline(KvCache empty_full, std::vector<Chunk> chunks, const codec::Profile* profile,
                 const model::Model* model, double prefill_rate, Done on_done, Error on_error,
                 std::vector<int32_t> token_ids = {}, Corrupt on_corrupt = {}, Tables tables = {},
                 Rows on_rows = {}, bool keep_rows = true);
  ~DecodePipeline();
  void submit(size_t chunk, bool text, std::vector<uint8_t> blob);
  using TimePoint = std::chrono::steady_clock::time_point;
  // Call before the chunk's KV blob is submitted (controller, issue 14).
  void hedge(size_t chunk, TimePoint deadline);
  // Call before the chunk's blob is submitted (controller, issue 14). Ignored without a model or
  // token ids.
  void rescue(size_t chunk, TimePoint at, TimePoint latest);
  // How chunk i was made ready: true = from text (recompute), false = from KV (valid once done).
  bool served_by_text(size_t chunk) const;
  // True when chunk i was recomputed by its rescue (valid once done).
  bool rescued(size_t chunk) const;
  // Call before the upgrade's blob is submitted; `on_held(chunk)` runs on the decode thread once
  // it is decoded (or dropped). Only for a pipeline with keep_rows and no on_rows: rows once
  // reported to on_rows are final, so apply_upgrades() applies nothing there.
  void upgrade(size_t chunk);
  void set_on_held(std::function<void(size_t chunk, bool ok)> on_held);
  // Copies every decoded upgrade into the cache; returns the chunks upgraded.
  std::vector<size_t> apply_upgrades();
  void stop();
  // The assembled cache; call it only once every chunk was reported done (the workers then write
  // nothing more). Stops the workers without waiting for them to exit (stop() joins).
  KvCache take();

 private:
  struct Job {
    size_t chunk;
    std::vector<uint8_t> blob;
  };
  void decode_loop();
  void compute_loop();
  std::vector<int32_t> text_tokens(const Job& job) const;  // a text blob's ids, checked
  // Compute thread, with mu_ held: use a held hedge KV whose deadline has passed; returns the
  // chunk (the caller reports it after unlocking), or -1.
  long take_due_hedge();
  // Compute thread, with mu_ held: claim the first chunk not ready if its rescue is due; returns
  // it, or -1. *wake: its rescue time when one is armed but not due yet.
  long take_due_rescue(TimePoint* wake);
  void mark_ready(size_t chunk);  // with mu_ held
  void fail(const std::string& msg);
  bool rows_final(size_t chunk, const KvCache& src, uint32_t src_row);  // on_rows_; false (after fail()) if it threw

  KvCache full_;
  std::vector<Chunk> chunks_;
  const codec::Profile* profile_;
  const model::Model* model_;
  double prefill_rate_;
  Done on_done_;
  Error on_error_;
  std::vector<int32_t> token_ids_;
  Corrupt on_corrupt_;
  Rows on_rows_;
  bool keep_rows_ = true;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> decode_q_, text_q_;
  std::vector<bool> ready_;
  // hedging (controller, issue 14)
  std::vector<bool> claimed_, hedged_, by_text_;
  std::vector<TimePoint> deadline_;
  std::vector<bool> rescue_armed_, rescued_;
  std::vector<TimePoint> rescue_at_, rescue_latest_, ready_at_;
  std::vector<std::unique_ptr<KvCache>> held_;  // decoded hedge KV, not yet used
  std::vector<double> held_busy_;
  std::vector<bool> upgrade_;                       // an upgrade is expected
  std::vector<std::unique_ptr<KvCache>> upgraded_;  // decoded upgrades, not yet applied
  std::function<void(size_t, bool)> on_held_;
  bool stop_ = false, failed_ = false;
  Tables tables_;  // per profile level (decode thread only)
  std::thread decode_thread_, compute_thread_;
};

}  // namespace kvstream::streamer
