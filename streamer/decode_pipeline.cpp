// Decode / recompute worker threads (see decode_pipeline.h).
#include "streamer/decode_pipeline.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <stdexcept>

#ifdef __linux__
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "codec/chunk_codec.h"

namespace kvstream::streamer {

namespace {
constexpr int kWorkerNiceIncrement = 5;
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The workers are throughput work; the receiver's network thread is latency work (it measures
// arrivals and sends the next request). On a machine with few cores a busy worker would otherwise
// delay both. Raises this thread's nice value; failure (not permitted) is harmless.
void lower_worker_priority() {
#ifdef __linux__
  const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
  ::setpriority(PRIO_PROCESS, tid, ::getpriority(PRIO_PROCESS, tid) + kWorkerNiceIncrement);
#endif
}

void copy_rows(const KvCache& src, size_t src_begin, KvCache& dst, size_t dst_begin, size_t n) {
  const size_t kd = size_t(dst.shape.kv_dim());
  for (int l = 0; l < dst.shape.n_layers; ++l) {
    std::memcpy(dst.k_row(l, dst_begin), src.k_row(l, src_begin), n * kd * sizeof(float));
    std::memcpy(dst.v_row(l, dst_begin), src.v_row(l, src_begin), n * kd * sizeof(float));
  }
}
}  // namespace

DecodePipeline::DecodePipeline(KvCache empty_full, std::vector<Chunk> chunks, const codec::Profile* profile,
                               const model::Model* model, double prefill_rate, Done on_done, Error on_error,
                               std::vector<int32_t> token_ids, Corrupt on_corrupt, Tables tables,
                               Rows on_rows, bool keep_rows)
    : full_(std::move(empty_full)),
      chunks_(std::move(chunks)),
      profile_(profile),
      model_(model),
      prefill_rate_(prefill_rate),
      on_done_(std::move(on_done)),
      on_error_(std::move(on_error)),
      token_ids_(std::move(token_ids)),
      on_corrupt_(std::move(on_corrupt)),
      on_rows_(std::move(on_rows)),
      keep_rows_(keep_rows),
      tables_(std::move(tables)) {
  uint64_t total = 0;
  for (const auto& c : chunks_) total = std::max<uint64_t>(total, uint64_t(c.token_begin) + c.tokens);
  if (!token_ids_.empty() && token_ids_.size() != total)
    throw std::invalid_argument("decode pipeline: " + std::to_string(token_ids_.size()) + " token ids for " +
                                std::to_string(total) + " tokens");
  if (!keep_rows_ && model_) throw std::invalid_argument("decode pipeline: recomputing text needs the rows kept");
  if (keep_rows_) full_.resize(size_t(total));
  else full_.tokens.assign(size_t(total), 0);  // rows go to on_rows only: no cache is allocated
  if (!token_ids_.empty()) full_.tokens = token_ids_;
  ready_.assign(chunks_.size(), false);
  claimed_.assign(chunks_.size(), false);
  hedged_.assign(chunks_.size(), false);
  by_text_.assign(chunks_.size(), false);
  deadline_.resize(chunks_.size());
  rescue_armed_.assign(chunks_.size(), false);
  rescued_.assign(chunks_.size(), false);
  rescue_at_.resize(chunks_.size());
  rescue_latest_.resize(chunks_.size());
  ready_at_.resize(chunks_.size());
  held_.resize(chunks_.size());
  held_busy_.assign(chunks_.size(), 0.0);
  upgrade_.assign(chunks_.size(), false);
  upgraded_.resize(chunks_.size());
  decode_thread_ = std::thread([this] { decode_loop(); });
  compute_thread_ = std::thread([this] { compute_loop(); });
}

DecodePipeline::~DecodePipeline() { stop(); }

DecodePipeline::Tables DecodePipeline::build_tables(const codec::Profile& p) {
  Tables t;
  for (size_t l = 0; l < p.levels.size(); ++l)
    t.push_back(std::make_shared<const codec::LevelDecodeTables>(codec::build_decode_tables(p, int(l))));
  return t;
}

void DecodePipeline::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (decode_thread_.joinable()) decode_thread_.join();
  if (compute_thread_.joinable()) compute_thread_.join();
}

KvCache DecodePipeline::take() {
  // Every chunk was reported done, so the workers write no more rows: each report happened after
  // its rows were written (the ready flag is set under mu_). The workers are told to stop; joining
  // them is left to stop() / the destructor, off the caller's path (on a busy machine the
  // lower-priority workers may take a while to be scheduled just to exit).
  std::lock_guard<std::mutex> lock(mu_);
  stop_ = true;
  cv_.notify_all();
  return std::move(full_);
}

void DecodePipeline::submit(size_t chunk, bool text, std::vector<uint8_t> blob) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    (text ? text_q_ : decode_q_).push_back({chunk, std::move(blob)});
  }
  cv_.notify_all();
}

void DecodePipeline::hedge(size_t chunk, TimePoint deadline) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (chunk >= chunks_.size()) return;
    hedged_[chunk] = true;
    deadline_[chunk] = deadline;
  }
  cv_.notify_all();
}

void DecodePipeline::rescue(size_t chunk, TimePoint at, TimePoint latest) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (chunk >= chunks_.size() || !model_ || token_ids_.empty()) return;
    rescue_armed_[chunk] = true;
    rescue_at_[chunk] = at;
    rescue_latest_[chunk] = latest;
  }
  cv_.notify_all();
}

bool DecodePipeline::rescued(size_t chunk) const {
  std::lock_guard<std::mutex> lock(const_cast<std::mutex&>(mu_));
  return chunk < rescued_.size() && rescued_[chunk];
}

bool DecodePipeline::served_by_text(size_t chunk) const {
  std::lock_guard<std::mutex> lock(const_cast<std::mutex&>(mu_));
  return chunk < by_text_.size() && by_text_[chunk];
}

void DecodePipeline::upgrade(size_t chunk) {
  std::lock_guard<std::mutex> lock(mu_);
  if (chunk < chunks_.size()) upgrade_[chunk] = true;
}

void DecodePipeline::set_on_held(std::function<void(size_t, bool)> on_held) {
  std::lock_guard<std::mutex> lock(mu_);
  on_held_ = std::move(on_held);
}

std::vector<size_t> DecodePipeline::apply_upgrades() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<size_t> done;
  if (!keep_rows_ || on_rows_) return done;  // rows reported final stay final (see upgrade())
  for (size_t j = 0; j < chunks_.size(); ++j) {
    if (!upgraded_[j] || rescued_[j]) continue;  // a rescued chunk holds its exact recompute
    copy_rows(*upgraded_[j], 0, full_, chunks_[j].token_begin, chunks_[j].tokens);
    upgraded_[j].reset();
    done.push_back(j);
  }
  return done;
}

long DecodePipeline::take_due_hedge() {
  const auto now = Clock::now();
  for (size_t j = 0; j < chunks_.size(); ++j) {
    if (!hedged_[j] || claimed_[j] || !held_[j] || now <= deadline_[j]) continue;
    claimed_[j] = true;
    copy_rows(*held_[j], 0, full_, chunks_[j].token_begin, chunks_[j].tokens);
    held_[j].reset();
    mark_ready(j);
    return long(j);
  }
  return -1;
}

void DecodePipeline::mark_ready(size_t chunk) {
  ready_[chunk] = true;
  ready_at_[chunk] = Clock::now();
}

long DecodePipeline::take_due_rescue(TimePoint* wake) {
  size_t j = 0;
  TimePoint prefix_at = TimePoint::min();  // when every chunk before j was ready
  for (; j < chunks_.size() && ready_[j]; ++j) prefix_at = std::max(prefix_at, ready_at_[j]);
  // Due in its window only: a recompute that could only start later no longer meets the SLO by
  // itself, and waiting for what the chunk was fetched as is then the better bet.
  if (j == chunks_.size() || !rescue_armed_[j] || claimed_[j] || prefix_at > rescue_latest_[j]) return -1;
  if (Clock::now() < rescue_at_[j]) {
    *wake = std::min(*wake, rescue_at_[j]);
    return -1;
  }
  claimed_[j] = true;
  by_text_[j] = true;
  rescued_[j] = true;
  held_[j].reset();
  return long(j);
}

void DecodePipeline::fail(const std::string& msg) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (failed_) return;
    failed_ = true;
    stop_ = true;
  }
  cv_.notify_all();
  on_error_(msg);
}

bool DecodePipeline::rows_final(size_t chunk, const KvCache& src, uint32_t src_row) {
  if (!on_rows_) return true;
  try {
    const auto& c = chunks_[chunk];
    on_rows_(chunk, src, src_row, c.token_begin, c.tokens);
    return true;
  } catch (const std::exception& e) {
    fail("chunk " + std::to_string(chunk) + ": " + e.what());
    return false;
  }
}

void DecodePipeline::decode_loop() {
  lower_worker_priority();
  if (profile_) tables_.resize(profile_->levels.size());
  // One chunk's rows, reused from chunk to chunk (allocating and zero-filling every layer's rows
  // per chunk was a large share of a small chunk's decode); it is moved out only where a decoded
  // chunk is held (hedge, upgrade), and then made anew.
  const auto fresh_rows = [this] { return KvCache(full_.shape, full_.model_name, full_.rope_theta, false); };
  KvCache tmp = fresh_rows();
  while (true) {
    Job job;
    bool hedged = false, upgrading = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !decode_q_.empty(); });
      if (stop_) return;
      job = std::move(decode_q_.front());
      decode_q_.pop_front();
      const bool up = job.chunk < chunks_.size() && upgrade_[job.chunk] && claimed_[job.chunk];
      if (up) upgrade_[job.chunk] = false;  // this blob is the upgrade
      else if (job.chunk < chunks_.size() && claimed_[job.chunk]) continue;  // recomputed (a hedge's text won)
      hedged = !up && job.chunk < chunks_.size() && hedged_[job.chunk];
      upgrading = up;
    }
    const auto t0 = Clock::now();
    try {
      if (job.chunk >= chunks_.size()) throw std::runtime_error("chunk index out of range");
      const auto& c = chunks_[job.chunk];
      const auto h = codec::parse_blob_header(job.blob);  // checks the blob CRC too
      if (h.method == codec::Method::Text) throw std::runtime_error("a KV chunk arrived as text");
      if (h.first_pos != c.token_begin || h.tokens != c.tokens)
        throw std::runtime_error("blob holds positions " + std::to_string(h.first_pos) + "+" +
                                 std::to_string(h.tokens) + ", expected " + std::to_string(c.token_begin) + "+" +
                                 std::to_string(c.tokens));
      tmp.resize(c.tokens);
      std::fill(tmp.tokens.begin(), tmp.tokens.end(), 0);  // a blob without ids leaves them 0
      const codec::LevelDecodeTables* tables = nullptr;
      if (h.method == codec::Method::Quant && h.level < tables_.size()) {
        // built once per level, on first use (a level never fetched costs nothing)
        if (!tables_[h.level])
          tables_[h.level] = std::make_shared<const codec::LevelDecodeTables>(codec::build_decode_tables(*profile_, h.level));
        tables = tables_[h.level].get();
      }
      codec::decode_chunk(job.blob, profile_, tmp, tables, c.token_begin);
      // Blobs that carry token ids (their KV depends on them) must carry the context's.
      const bool has_ids = std::any_of(tmp.tokens.begin(), tmp.tokens.end(), [](int32_t t) { return t != 0; });
      if (has_ids && !token_ids_.empty() &&
          !std::equal(tmp.tokens.begin(), tmp.tokens.end(), token_ids_.begin() + long(c.token_begin)))
        throw std::runtime_error("the blob's token ids differ from the manifest's");
      if (upgrading) {  // held until apply_upgrades()
        std::function<void(size_t, bool)> cb;
        {
          std::lock_guard<std::mutex> lock(mu_);
          upgraded_[job.chunk] = std::make_unique<KvCache>(std::move(tmp));
          cb = on_held_;
        }
        tmp = fresh_rows();
        if (cb) cb(job.chunk, true);
        continue;
      }
      if (hedged) {  // held until its deadline; the text path may still win
        bool held = false;
        {
          std::lock_guard<std::mutex> lock(mu_);
          if (!claimed_[job.chunk]) {
            held_[job.chunk] = std::make_unique<KvCache>(std::move(tmp));
            held_busy_[job.chunk] = since(t0);
            held = true;
          }
          cv_.notify_all();
        }
        if (held) tmp = fresh_rows();
        continue;
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (claimed_[job.chunk]) continue;
        claimed_[job.chunk] = true;
      }
      if (keep_rows_) copy_rows(tmp, 0, full_, c.token_begin, c.tokens);
    } catch (const std::exception& e) {
      // Nothing of the cache was written (rows are copied only after a complete decode).
      if (upgrading) {  // a failed upgrade is dropped: the chunk keeps what it has
        std::function<void(size_t, bool)> cb;
        {
          std::lock_guard<std::mutex> lock(mu_);
          cb = on_held_;
        }
        if (cb) cb(job.chunk, false);
        continue;
      }
      if (hedged) {  // a hedge that fails only cancels the hedge: the text path carries the chunk
        {
          std::lock_guard<std::mutex> lock(mu_);
          hedged_[job.chunk] = false;
        }
        cv_.notify_all();
        continue;
      }
      if (on_corrupt_ && job.chunk < chunks_.size()) {
        on_corrupt_(job.chunk, e.what());
        continue;
      }
      return fail("chunk " + std::to_string(job.chunk) + ": " + e.what());
    }
    if (!(keep_rows_ ? rows_final(job.chunk, full_, chunks_[job.chunk].token_begin) : rows_final(job.chunk, tmp, 0)))
      return;
    const double busy = since(t0);
    {
      std::lock_guard<std::mutex> lock(mu_);
      mark_ready(job.chunk);
    }
    cv_.notify_all();
    on_done_(job.chunk, busy);
  }
}

std::vector<int32_t> DecodePipeline::text_tokens(const Job& job) const {
  if (!model_) throw std::runtime_error("a text chunk arrived but no model is loaded");
  const auto& c = chunks_[job.chunk];
  const auto h = codec::parse_blob_header(job.blob);
  if (h.method != codec::Method::Text) throw std::runtime_error("a text chunk arrived as KV");
  if (h.first_pos != c.token_begin || h.tokens != c.tokens) throw std::runtime_error("text blob positions mismatch");
  KvCache tmp(full_.shape, full_.model_name, full_.rope_theta, false);
  tmp.resize(c.tokens);
  codec::decode_chunk(job.blob, nullptr, tmp, nullptr, c.token_begin);
  std::vector<int32_t> tokens(tmp.tokens.begin(), tmp.tokens.begin() + c.tokens);
  if (!token_ids_.empty() && !std::equal(tokens.begin(), tokens.end(), token_ids_.begin() + long(c.token_begin)))
    throw std::runtime_error("the text blob's token ids differ from the manifest's");
  return tokens;
}

void DecodePipeline::compute_loop() {
  lower_worker_priority();
  // The queued text job with the lowest chunk index (a retried chunk may arrive after later text
  // chunks; those need it first).
  auto lowest = [this] {
    auto best = text_q_.begin();
    for (auto it = text_q_.begin(); it != text_q_.end(); ++it)
      if (it->chunk < best->chunk) best = it;
    return best;
  };
  auto earlier_ready = [this](size_t chunk) {
    for (size_t i = 0; i < chunk && i < ready_.size(); ++i)
      if (!ready_[i]) return false;
    return true;
  };
  while (true) {
    Job job;
    {
      // Wait until the lowest queued text chunk has the KV of every earlier chunk (and, if it is
      // hedged and past its deadline, its KV is not on the way instead), or a hedge is due.
      std::unique_lock<std::mutex> lock(mu_);
      long due = -1, rescue = -1;
      while (!stop_) {
        if ((due = take_due_hedge()) >= 0) break;
        TimePoint wake = TimePoint::max();
        if ((rescue = take_due_rescue(&wake)) >= 0) break;
        for (auto it = text_q_.begin(); it != text_q_.end();)  // text jobs of chunks ready from their hedge
          it = it->chunk < chunks_.size() && claimed_[it->chunk] ? text_q_.erase(it) : std::next(it);
        if (!text_q_.empty() && earlier_ready(lowest()->chunk)) {
          const size_t j = lowest()->chunk;
          if (j >= chunks_.size() || !hedged_[j] || Clock::now() <= deadline_[j]) break;
        }
        // sleep until notified, or until the next held hedge or the rescue falls due
        for (size_t j = 0; j < chunks_.size(); ++j)
          if (hedged_[j] && !claimed_[j] && held_[j]) wake = std::min(wake, deadline_[j]);
        if (wake == TimePoint::max()) cv_.wait(lock);
        else cv_.wait_until(lock, wake + std::chrono::microseconds(1));
      }
      if (stop_) return;
      if (due >= 0) {
        const double busy = held_busy_[size_t(due)];
        lock.unlock();
        cv_.notify_all();
        if (!rows_final(size_t(due), full_, chunks_[size_t(due)].token_begin)) return;
        on_done_(size_t(due), busy);
        continue;
      }
      if (rescue >= 0) {
        job.chunk = size_t(rescue);
      } else {
        const auto it = lowest();
        job = std::move(*it);
        text_q_.erase(it);
      }
      if (rescue < 0 && job.chunk < chunks_.size()) {
        claimed_[job.chunk] = true;
        by_text_[job.chunk] = true;
        held_[job.chunk].reset();
      }
    }
    std::vector<int32_t> tokens;
    try {
      if (job.chunk >= chunks_.size()) throw std::runtime_error("chunk index out of range");
      if (rescued_[job.chunk]) {  // written by this thread only; token ids checked at rescue()
        const auto& c = chunks_[job.chunk];
        tokens.assign(token_ids_.begin() + long(c.token_begin), token_ids_.begin() + long(c.token_begin + c.tokens));
      } else {
        tokens = text_tokens(job);
      }
    } catch (const std::exception& e) {
      return fail("chunk " + std::to_string(job.chunk) + " (text): " + e.what());
    }
    const auto t0 = Clock::now();
    try {
      const auto& c = chunks_[job.chunk];
      KvCache prefix = full_.slice(0, c.token_begin);
      model_->recompute(prefix, tokens);
      if (prefix.num_tokens() != size_t(c.token_begin) + c.tokens) throw std::runtime_error("recompute size mismatch");
      copy_rows(prefix, c.token_begin, full_, c.token_begin, c.tokens);
      for (uint32_t t = 0; t < c.tokens; ++t) full_.tokens[c.token_begin + t] = tokens[t];
      if (prefill_rate_ > 0) {
        const double hold = double(c.tokens) / prefill_rate_;
        const double left = hold - since(t0);
        if (left > 0) std::this_thread::sleep_for(std::chrono::duration<double>(left));
      }
    } catch (const std::exception& e) {
      return fail("recompute of chunk " + std::to_string(job.chunk) + ": " + e.what());
    }
    if (!rows_final(job.chunk, full_, chunks_[job.chunk].token_begin)) return;
    const double busy = since(t0);
    {
      std::lock_guard<std::mutex> lock(mu_);
      mark_ready(job.chunk);
    }
    cv_.notify_all();
    on_done_(job.chunk, busy);
  }
}

}  // namespace kvstream::streamer
