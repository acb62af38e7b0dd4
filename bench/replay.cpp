#include "bench/replay.h"

#include <stdlib.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>

#include "store/prefetcher.h"
#include "store/tiered_store.h"

namespace kvstream::store {
namespace {

using Clock = std::chrono::steady_clock;

// CPU time of the calling thread: decode timings are not inflated by other processes on a shared
// machine (the decode is single-threaded on this thread).
double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

struct Request {
  double time_s;
  int session, turn;
};

struct SessionState {
  std::vector<int32_t> history;  // tokens whose KV the session holds (and stored)
  KvCache kv;                    // their KV, pre-RoPE keys (the serving GPU's copy)
  std::optional<PrefixKey> key;  // its store key
  std::vector<std::vector<int32_t>> prompts, responses;
};

class ScopedDir {
 public:
  explicit ScopedDir(std::string given) : path_(std::move(given)) {
    if (path_.empty()) {
      std::string tmpl = (std::filesystem::temp_directory_path() / "kvstream-replay-XXXXXX").string();
      if (!mkdtemp(tmpl.data())) throw std::runtime_error("replay: cannot create a temp directory");
      path_ = tmpl;
      owned_ = true;
    }
  }
  ~ScopedDir() {
    if (owned_) {
      std::error_code ec;
      std::filesystem::remove_all(path_, ec);
    }
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  bool owned_ = false;
};

}  // namespace

nlohmann::json ReplayResult::to_json(const ReplayOptions& o) const {
  const double elig = eligible_turns ? double(eligible_turns) : 1.0;
  nlohmann::json j{
      {"policy", policy},
      {"turns", turns},
      {"eligible_turns", eligible_turns},
      {"hit_rate", hit_rate()},
      {"hit_rate_mem", hits_mem / elig},
      {"hit_rate_disk", hits_disk / elig},
      {"hit_rate_shared", hits_shared / elig},
      {"shared_tier", o.shared ? o.shared->name() : "none"},
      {"bytes_read_shared", bytes_read_shared},
      {"shared_puts", shared_puts},
      {"shared_errors", shared_errors},
      {"mean_ttft_ms", mean_ttft_ms},
      {"recompute_mean_ttft_ms", recompute_mean_ttft_ms},
      {"ttft_reduction", recompute_mean_ttft_ms > 0 ? 1.0 - mean_ttft_ms / recompute_mean_ttft_ms : 0.0},
      {"load_overlap", overlap},
      {"pipeline_layers", pipeline_layers},
      {"mean_ttft_serial_ms", mean_ttft_serial_ms},
      {"mean_ttft_layerwise_ms", mean_ttft_layerwise_ms},
      {"ttft_reduction_serial", recompute_mean_ttft_ms > 0 ? 1.0 - mean_ttft_serial_ms / recompute_mean_ttft_ms : 0.0},
      {"ttft_reduction_layerwise", recompute_mean_ttft_ms > 0 ? 1.0 - mean_ttft_layerwise_ms / recompute_mean_ttft_ms : 0.0},
      {"mean_decode_ms", mean_decode_ms},
      {"mean_decode_wall_ms", mean_decode_wall_ms},
      {"prefill_tokens_saved", prefill_tokens_saved},
      {"prefill_tokens_recompute", prefill_tokens_recompute},
      {"bytes_read_mem", bytes_read_mem},
      {"bytes_read_disk", bytes_read_disk},
      {"bytes_prefetched_disk", bytes_prefetched},
      {"bytes_written_disk", bytes_written_disk},
      {"truncations", truncations},
      {"demotions", demotions},
      {"evictions", dropped},
      {"prefetched_entries", prefetched},
      {"saves_dropped", saves_dropped},
      {"mean_entry_bytes", mean_entry_bytes},
      {"prefetch_window", prefetch_window},
      {"eviction_window", eviction_window},
      {"codec", codec},
      {"level", level},
      {"wall_s", wall_s},
      {"settings",
       {{"mem_bytes", o.mem_bytes},
        {"disk_bytes", o.disk_bytes},
        {"prefill_rate_tok_s", o.prefill_rate},
        {"mem_bw_bytes_s", o.mem_bw},
        {"disk_bw_bytes_s", o.disk_bw},
        {"kv_scale", o.kv_scale},
        {"shared_bw_bytes_s", o.shared_bw},
        {"shared_rtt_s", o.shared_rtt_s},
        {"truncate_ratio", o.truncate_ratio},
        {"lookahead", o.lookahead},
        {"chunk_tokens", o.chunk_tokens},
        {"save_queue", o.save_queue},
        {"fsync", o.fsync},
        {"load_overlap", load_overlap_name(o.overlap)},
        {"pipeline_layers", o.pipeline_layers}}}};
  if (!per_turn.empty()) {
    auto& arr = j["per_turn"] = nlohmann::json::array();
    for (const auto& t : per_turn)
      arr.push_back({{"session", t.session}, {"turn", t.turn}, {"history", t.history}, {"prompt", t.prompt},
                     {"dropped", t.dropped}, {"reused", t.reused}, {"tier", t.tier}, {"ttft_ms", t.ttft_ms},
                     {"recompute_ttft_ms", t.recompute_ttft_ms}, {"decode_ms", t.decode_ms},
                     {"ttft_serial_ms", t.ttft_serial_ms}, {"ttft_layerwise_ms", t.ttft_layerwise_ms}});
  }
  return j;
}

ReplayResult replay(const Workload& w, const KvEngine& engine, const ContextCodec& codec,
                    const ReplayOptions& o) {
  if (!(o.prefill_rate > 0) || !(o.mem_bw > 0) || !(o.disk_bw > 0) || !(o.kv_scale > 0) || !(o.shared_bw > 0) ||
      !(o.shared_rtt_s >= 0))
    throw std::invalid_argument("replay: rates, bandwidths and kv_scale must be positive");
  if (!(o.truncate_ratio > 0 && o.truncate_ratio <= 1)) throw std::invalid_argument("replay: truncate ratio in (0, 1]");
  if (o.level < 0 || o.level >= codec.num_levels())
    throw std::invalid_argument("replay: codec has no level " + std::to_string(o.level));
  const auto t_start = Clock::now();
  if (o.pipeline_layers < 0) throw std::invalid_argument("replay: pipeline layers must be >= 0");
  const int window = engine.window();
  const int layers = o.pipeline_layers > 0 ? o.pipeline_layers : std::max(1, engine.new_cache().shape.n_layers);
  const size_t step = std::max<size_t>(1, static_cast<size_t>(o.truncate_ratio * window));

  // Tokenize every turn once; order requests by arrival.
  std::vector<SessionState> ss(w.sessions.size());
  std::vector<Request> reqs;
  for (size_t s = 0; s < w.sessions.size(); ++s) {
    for (size_t k = 0; k < w.sessions[s].turns.size(); ++k) {
      const auto& t = w.sessions[s].turns[k];
      auto p = engine.tokenize(t.prompt, /*bos=*/k == 0);
      auto r = engine.tokenize(t.response, false);
      // A single turn must fit the window with room to spare; cut the response if it does not.
      const size_t cap = static_cast<size_t>(window) / 2;
      if (p.size() > cap) p.resize(cap);
      if (p.size() + r.size() > cap) r.resize(cap - p.size());
      ss[s].prompts.push_back(std::move(p));
      ss[s].responses.push_back(std::move(r));
      reqs.push_back({t.time_s, static_cast<int>(s), static_cast<int>(k)});
    }
    ss[s].kv = engine.new_cache();
  }
  std::stable_sort(reqs.begin(), reqs.end(), [](const Request& a, const Request& b) {
    return a.time_s < b.time_s || (a.time_s == b.time_s && (a.session < b.session || (a.session == b.session && a.turn < b.turn)));
  });

  ScopedDir dir(o.dir);
  StoreConfig sc;
  sc.dir = dir.path();
  sc.mem_bytes = o.mem_bytes;
  sc.disk_bytes = o.disk_bytes;
  sc.policy = o.policy;
  sc.chunk_tokens = o.chunk_tokens;
  sc.domain = engine.model_name();
  sc.fsync = o.fsync;
  sc.drop_prefixes = false;  // each save names its predecessor explicitly
  sc.lower = o.shared;
  auto store = std::make_unique<TieredStore>(sc);
  const bool scheduler = o.policy == PolicyKind::Scheduler;
  std::unique_ptr<Prefetcher> prefetcher;
  if (scheduler) prefetcher = std::make_unique<Prefetcher>(*store);
  SaveQueue saves(o.save_queue, o.overflow, 1);

  auto upcoming = [&](size_t from) {
    std::vector<PrefixKey> keys;
    for (size_t j = from; j < reqs.size() && keys.size() < o.lookahead; ++j)
      if (const auto& k = ss[reqs[j].session].key) keys.push_back(*k);
    return keys;
  };

  ReplayResult res;
  res.policy = policy_name(o.policy);
  res.codec = codec.name();
  res.level = codec.level_name(o.level);
  res.overlap = load_overlap_name(o.overlap);
  res.pipeline_layers = layers;
  double sum_ttft = 0, sum_serial = 0, sum_layerwise = 0, sum_recompute = 0, sum_decode = 0, sum_decode_wall = 0;
  size_t decodes = 0;
  ProgressCounter turns_done(o.progress, "turns", reqs.size());

  for (size_t i = 0; i < reqs.size(); ++i) {
    const Request& rq = reqs[i];
    SessionState& st = ss[rq.session];
    const auto& prompt = st.prompts[rq.turn];
    const auto& response = st.responses[rq.turn];
    if (scheduler) {  // the request waited in the queue: prefetch ran meanwhile
      prefetcher->schedule(upcoming(i));
      prefetcher->wait_idle();
    }
    std::vector<int32_t> request = st.history;
    request.insert(request.end(), prompt.begin(), prompt.end());

    ReplayTurn rt;
    rt.session = rq.session;
    rt.turn = rq.turn;
    rt.history = st.history.size();
    rt.prompt = prompt.size();
    std::optional<Fetched> hit;
    if (!st.history.empty()) {
      ++res.eligible_turns;
      hit = store->get(request);
    }
    // Truncation: drop the oldest whole steps of history until the turn fits the window.
    size_t drop = 0;
    while (st.history.size() - drop + prompt.size() + response.size() > static_cast<size_t>(window))
      drop = std::min(st.history.size(), drop + step);
    rt.dropped = drop;
    if (drop) ++res.truncations;
    const size_t kept = st.history.size() - drop;
    const double recompute_s = double(kept + prompt.size()) / o.prefill_rate;
    double serial_s = recompute_s, layerwise_s = recompute_s;
    const size_t matched = hit ? std::min(hit->matched_tokens, st.history.size()) : 0;
    if (hit && matched > drop) {
      const auto& payload = hit->record->payload;
      const uint64_t level_bytes = codec.level_bytes(payload, o.level, drop, matched);
      const double transfer_s = double(level_bytes) * o.kv_scale / o.mem_bw;
      double disk_s = 0;
      if (hit->tier == Tier::Disk) {
        disk_s = double(hit->bytes) * o.kv_scale / o.disk_bw;
        ++res.hits_disk;
        res.bytes_read_disk += hit->bytes;
        rt.tier = "disk";
      } else if (hit->tier == Tier::Shared) {
        disk_s = o.shared_rtt_s + double(level_bytes) * o.kv_scale / o.shared_bw;
        ++res.hits_shared;
        res.bytes_read_shared += hit->bytes;
        rt.tier = "shared";
      } else {
        ++res.hits_mem;
        rt.tier = "memory";
      }
      res.bytes_read_mem += level_bytes;
      const auto d0 = Clock::now();
      const double c0 = thread_cpu_s();
      const KvCache decoded = codec.decode(payload, o.level, drop, matched);
      const double decode_s = thread_cpu_s() - c0;
      sum_decode_wall += std::chrono::duration<double>(Clock::now() - d0).count();
      if (o.verify_decode &&
          (decoded.num_tokens() != matched - drop ||
           !std::equal(decoded.tokens.begin(), decoded.tokens.end(), st.history.begin() + drop)))
        throw std::runtime_error("replay: decoded context does not match the request's tokens");
      const size_t reused = matched - drop;
      rt.reused = reused;
      rt.decode_ms = decode_s * 1e3;
      sum_decode += decode_s;
      ++decodes;
      res.prefill_tokens_saved += reused;
      const double compute_s = double(kept - reused + prompt.size()) / o.prefill_rate;
      serial_s = hit_ttft_s(LoadOverlap::None, disk_s, transfer_s + decode_s, compute_s, layers);
      layerwise_s = hit_ttft_s(LoadOverlap::Layerwise, disk_s, transfer_s + decode_s, compute_s, layers);
    } else {
      rt.tier = "miss";
    }
    const double ttft_s = o.overlap == LoadOverlap::None ? serial_s : layerwise_s;
    rt.ttft_ms = ttft_s * 1e3;
    rt.ttft_serial_ms = serial_s * 1e3;
    rt.ttft_layerwise_ms = layerwise_s * 1e3;
    rt.recompute_ttft_ms = recompute_s * 1e3;
    sum_ttft += ttft_s;
    sum_serial += serial_s;
    sum_layerwise += layerwise_s;
    sum_recompute += recompute_s;
    res.prefill_tokens_recompute += kept + prompt.size();
    ++res.turns;
    if (o.per_turn) res.per_turn.push_back(rt);

    // The serving side's KV after this turn: truncate (pre-RoPE: re-rotated where rows now sit),
    // then the real model runs prompt + response.
    if (drop) {
      st.kv = st.kv.slice(drop, st.kv.num_tokens());
      st.history.erase(st.history.begin(), st.history.begin() + drop);
    }
    std::vector<int32_t> fresh = prompt;
    fresh.insert(fresh.end(), response.begin(), response.end());
    engine.extend(st.kv, fresh);
    st.history.insert(st.history.end(), fresh.begin(), fresh.end());
    const std::optional<PrefixKey> old = st.key;
    st.key = store->hasher().key_of(st.history);
    if (scheduler) store->set_lookahead(upcoming(i + 1));  // so the new entry's next use is known
    // Asynchronous save (encode + put) off the request path.
    saves.push([&store, &codec, kv = st.kv, tokens = st.history, old] {
      store->put(tokens, codec.encode(kv), old);
    });
    saves.flush();
    turns_done.step();
  }
  saves.flush();
  if (prefetcher) prefetcher->wait_idle();

  const auto s = store->stats();
  res.bytes_prefetched = s.bytes_prefetched;
  res.bytes_written_disk = s.bytes_written_disk;
  res.shared_puts = s.shared_puts;
  res.shared_errors = s.shared_errors;
  res.demotions = s.demotions;
  res.dropped = s.dropped;
  res.prefetched = s.prefetched;
  res.saves_dropped = saves.stats().dropped;
  res.mean_entry_bytes = (s.mem_entries + s.disk_entries) ? (s.mem_used + s.disk_used) / (s.mem_entries + s.disk_entries) : 0;
  res.prefetch_window = store->prefetch_window();
  res.eviction_window = store->eviction_window();
  res.mean_ttft_ms = res.turns ? 1e3 * sum_ttft / res.turns : 0;
  res.mean_ttft_serial_ms = res.turns ? 1e3 * sum_serial / res.turns : 0;
  res.mean_ttft_layerwise_ms = res.turns ? 1e3 * sum_layerwise / res.turns : 0;
  res.recompute_mean_ttft_ms = res.turns ? 1e3 * sum_recompute / res.turns : 0;
  res.mean_decode_ms = decodes ? 1e3 * sum_decode / decodes : 0;
  res.mean_decode_wall_ms = decodes ? 1e3 * sum_decode_wall / decodes : 0;
  prefetcher.reset();
  store.reset();
  res.wall_s = std::chrono::duration<double>(Clock::now() - t_start).count();
  return res;
}

}  // namespace kvstream::store
