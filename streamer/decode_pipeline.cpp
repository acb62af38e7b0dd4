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
  while (true) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !decode_q_.empty(); });
      if (stop_) return;
      job = std::move(decode_q_.front());
      decode_q_.pop_front();
    }
    const auto t0 = Clock::now();
    KvCache tmp(full_.shape, full_.model_name, full_.rope_theta, false);
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
      if (keep_rows_) copy_rows(tmp, 0, full_, c.token_begin, c.tokens);
    } catch (const std::exception& e) {
      // Nothing of the cache was written (rows are copied only after a complete decode).
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
      ready_[job.chunk] = true;
    }
    cv_.notify_all();
    on_done_(job.chunk, busy);
  }
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
      // Wait until the lowest queued text chunk has the KV of every earlier chunk.
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || (!text_q_.empty() && earlier_ready(lowest()->chunk)); });
      if (stop_) return;
      const auto it = lowest();
      job = std::move(*it);
      text_q_.erase(it);
    }
    std::vector<int32_t> tokens;
    try {
      if (job.chunk >= chunks_.size()) throw std::runtime_error("chunk index out of range");
      if (!model_) throw std::runtime_error("a text chunk arrived but no model is loaded");
      const auto& c = chunks_[job.chunk];
      const auto h = codec::parse_blob_header(job.blob);
      if (h.method != codec::Method::Text) throw std::runtime_error("a text chunk arrived as KV");
      if (h.first_pos != c.token_begin || h.tokens != c.tokens) throw std::runtime_error("text blob positions mismatch");
      KvCache tmp(full_.shape, full_.model_name, full_.rope_theta, false);
      tmp.resize(c.tokens);
      codec::decode_chunk(job.blob, nullptr, tmp, nullptr, c.token_begin);
      tokens.assign(tmp.tokens.begin(), tmp.tokens.begin() + c.tokens);
      if (!token_ids_.empty() &&
          !std::equal(tokens.begin(), tokens.end(), token_ids_.begin() + long(c.token_begin)))
        throw std::runtime_error("the text blob's token ids differ from the manifest's");
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
      ready_[job.chunk] = true;
    }
    cv_.notify_all();
    on_done_(job.chunk, busy);
  }
}

}  // namespace kvstream::streamer
