// The API-vs-receiver TTFT benchmark (see api_bench.h).
#include "bench/api_bench.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <numeric>
#include <optional>
#include <random>

#include "bench/stats.h"
#include "codec/container.h"
#include "kvstream/kvstream.h"
#include "netsim/relay.h"
#include "streamer/receiver.h"
#include "streamer/sender.h"

namespace kvstream::bench {

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

using kvstream::bench::median;

double decode_ms_total(const nlohmann::json& report) {
  double s = 0;
  for (const auto& c : report["chunks"]) s += c["decode_ms"].get<double>();
  return s;
}

// An engine's paged fp16 cache: per layer K and V [blocks, block_size, heads, dim], slots shuffled.
struct PagedCache {
  PagedCache(const KvShape& s, uint64_t tokens, uint32_t bs) : blocks((tokens + bs - 1) / bs) {
    const size_t n = blocks * bs * size_t(s.kv_dim());
    std::vector<void*> kp, vp;
    for (int l = 0; l < s.n_layers; ++l) {
      k.emplace_back(n);
      v.emplace_back(n);
      kp.push_back(k.back().data());
      vp.push_back(v.back().data());
    }
    std::vector<int64_t> order(blocks);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937(1));
    std::vector<int64_t> slots(tokens);
    for (uint64_t t = 0; t < tokens; ++t) slots[t] = order[t / bs] * bs + int64_t(t % bs);
    layout = KvLayout::paged(s, Dtype::F16, kp, vp, blocks, bs, slots);
  }
  uint64_t blocks;
  std::vector<std::vector<uint16_t>> k, v;
  KvLayout layout;
};

}  // namespace

nlohmann::json run_api_bench(const ApiBenchOptions& opt) {
  const auto reader = codec::ContainerReader::open(opt.dir + "/" + opt.context + ".kvs");
  const auto& info = reader.info();
  streamer::SenderOptions so;
  so.dir = opt.dir;
  so.insecure = true;  // a loopback benchmark of the data path
  streamer::Sender sender(so);
  sender.start();
  std::optional<netsim::Trace> trace;
  if (!opt.trace.empty()) trace = netsim::Trace::load(opt.trace);
  // A fresh relay per fetch, so that every fetch sees the trace from its start.
  auto endpoint = [&](std::unique_ptr<netsim::Relay>& relay) -> uint16_t {
    if (!trace) return sender.port();
    netsim::RelayConfig rc;
    rc.trace = *trace;
    rc.connect_port = sender.port();
    rc.delay_ns = netsim::seconds_to_ns(opt.delay_ms / 1e3);
    relay = std::make_unique<netsim::Relay>(rc);
    relay->start();
    return relay->port();
  };

  PagedCache cache(info.shape, info.num_tokens, opt.block_size);
  auto run_receiver = [&]() {
    std::unique_ptr<netsim::Relay> relay;
    streamer::ReceiverOptions ro;
    ro.port = endpoint(relay);
    ro.context = opt.context;
    ro.slo_s = opt.slo_ms / 1e3;
    ro.policy = streamer::parse_policy(opt.policy);
    ro.profile_dir = opt.profile_dir;
    const auto t0 = Clock::now();
    const auto out = streamer::receive(ro);
    const double wall = ms_since(t0);
    const auto j = out.result.to_json();
    return nlohmann::json{{"ttft_ms", out.result.ttft_ms}, {"wall_ms", wall}, {"plan", out.result.plan},
                          {"last_byte_ms", out.result.last_byte_ms}, {"decode_ms_total", decode_ms_total(j)}};
  };
  auto run_api = [&]() {
    std::unique_ptr<netsim::Relay> relay;
    FetchOptions fo;
    fo.port = endpoint(relay);
    fo.context = opt.context;
    fo.slo_ms = opt.slo_ms;
    fo.policy = opt.policy;
    fo.profile_cache_dir = opt.profile_dir;
    const auto t0 = Clock::now();
    auto t = Transfer::start(fo, cache.layout);
    t->wait_tokens(info.num_tokens);
    const double ready = ms_since(t0);
    const auto r = t->wait();
    const double wall = ms_since(t0);
    const auto j = nlohmann::json::parse(r.report_json);
    return nlohmann::json{{"ttft_ms", r.ttft_ms}, {"wall_ms", wall}, {"all_tokens_ready_ms", ready}, {"plan", r.plan},
                          {"last_byte_ms", j["last_byte_ms"]}, {"decode_ms_total", decode_ms_total(j)}};
  };
  run_receiver();  // warm-up: the profile cache, page faults of the layout, the sender's cache
  run_api();
  nlohmann::json runs = nlohmann::json::array();
  std::vector<double> old_ttft, new_ttft, ratio, wall_ratio, dec_ratio, old_tail, new_tail;
  for (int i = 0; i < opt.reps; ++i) {
    nlohmann::json a, b;
    if (i % 2 == 0) {
      a = run_receiver();
      b = run_api();
    } else {
      b = run_api();
      a = run_receiver();
    }
    old_ttft.push_back(a["ttft_ms"]);
    new_ttft.push_back(b["ttft_ms"]);
    ratio.push_back(b["ttft_ms"].get<double>() / a["ttft_ms"].get<double>());
    wall_ratio.push_back(b["wall_ms"].get<double>() / a["wall_ms"].get<double>());
    dec_ratio.push_back(b["decode_ms_total"].get<double>() / std::max(1e-9, a["decode_ms_total"].get<double>()));
    // The pipeline's tail: last byte -> every chunk ready (the last chunk's decode, and for the
    // API its conversion into the layout), free of the link's timing noise.
    old_tail.push_back(a["ttft_ms"].get<double>() - a["last_byte_ms"].get<double>());
    new_tail.push_back(b["ttft_ms"].get<double>() - b["last_byte_ms"].get<double>());
    runs.push_back({{"rep", i}, {"order", i % 2 == 0 ? "receiver first" : "api first"}, {"receiver", a},
                    {"api_paged_f16", b}});
  }
  sender.stop();
  const double r = median(ratio);
  return {{"config",
           {{"context", opt.context}, {"tokens", info.num_tokens}, {"chunks", info.num_chunks}, {"policy", opt.policy},
            {"slo_ms", opt.slo_ms}, {"reps", opt.reps}, {"block_size", opt.block_size},
            {"trace", opt.trace.empty() ? "loopback" : opt.trace}, {"delay_ms", opt.delay_ms},
            {"shape", {info.shape.n_layers, info.shape.n_kv_heads, info.shape.head_dim}}}},
          {"runs", runs},
          {"summary",
           {{"receiver_ttft_ms_median", median(old_ttft)}, {"api_ttft_ms_median", median(new_ttft)},
            {"ttft_ratio_median", r}, {"wall_ratio_median", median(wall_ratio)},
            {"decode_ms_ratio_median", median(dec_ratio)}, {"receiver_tail_ms_median", median(old_tail)},
            {"api_tail_ms_median", median(new_tail)}, {"goal_ttft_within_5pct", r <= 1.05}}}};
}

}  // namespace kvstream::bench
