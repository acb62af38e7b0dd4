// The reliability suite's parts (see reliability.h).
#include "bench/reliability.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "codec/container.h"
#include "model/kv_quality.h"
#include "netsim/relay.h"
#include "streamer/auth.h"
#include "bench/hostile.h"
#include "bench/stats.h"
#include "bench/verify.h"
#include "streamer/context_source.h"
#include "streamer/profile_cache.h"
#include "streamer/receiver.h"
#include "streamer/transport.h"
#include "streamer/wire.h"

namespace kvstream::streamer::bench {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

using kvstream::bench::median;
double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(q * double(v.size() - 1) + 0.5))];
}

uint64_t status_field(int pid, const std::string& field) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(field, 0) == 0) return std::stoull(line.substr(field.size())) * 1024;
  return 0;
}

// User + system CPU seconds of a process (/proc/PID/stat fields 14 and 15).
double cpu_seconds_of(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto close = s.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream in(s.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && (in >> field); ++i)
    if (i == 14 || i == 15) ticks += std::stod(field);
  return ticks / double(sysconf(_SC_CLK_TCK));
}

double self_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// The machine's 1-minute load average (/proc/loadavg), 0 when unreadable.
double load_average() {
  std::ifstream f("/proc/loadavg");
  double l = 0;
  f >> l;
  return l;
}

// Samples a process's RSS every 50 ms while alive; peak() is the largest seen.
class RssSampler {
 public:
  explicit RssSampler(int pid) : pid_(pid) {
    if (pid_ > 0)
      thread_ = std::thread([this] {
        while (!stop_) {
          peak_ = std::max<uint64_t>(peak_, status_field(pid_, "VmRSS:"));
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
      });
  }
  ~RssSampler() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  uint64_t peak() const { return peak_; }

 private:
  int pid_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> peak_{0};
  std::thread thread_;
};

json rss_json(int pid, uint64_t peak, uint64_t bound) {
  return {{"pid", pid},
          {"peak_rss_bytes", peak},
          {"hwm_bytes", status_field(pid, "VmHWM:")},
          {"bound_bytes", bound},
          {"within_bound", pid <= 0 || peak <= bound}};
}

// One fetch of `served` context `ctx` with `policy`, verified against its plan.
struct Fetch {
  size_t ctx = 0;
  std::string policy, tenant;
  bool completed = false, exact = false;
  std::string error, code, verify, plan;
  double ttft_ms = 0, wall_s = 0;
  uint64_t bytes = 0;
  bool fallback = false;
  json to_json() const {
    json j = {{"context", ctx}, {"policy", policy}, {"tenant", tenant}, {"completed", completed}, {"exact", exact},
              {"ttft_ms", ttft_ms}, {"wall_s", wall_s}, {"bytes", bytes}, {"plan", plan}};
    if (!error.empty()) j["error"] = error, j["code"] = code;
    if (!verify.empty()) j["verify"] = verify;
    if (fallback) j["fallback"] = true;
    return j;
  }
};

struct FetchSpec {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::optional<TlsClientConfig> tls;
  Tenant tenant;
  size_t ctx = 0;
  std::string policy = "fixed:q8";
  double prefill_rate = 0;
  double stall_timeout_s = 5, total_timeout_s = 60, slo_s = 0.5;
  std::shared_ptr<ProfileCache> profiles;  // shared by the part's fetches, as a node keeps them
};

// One fetch, timed but not verified: `out` holds what it received. Verification (a local decode
// and recompute of the plan) is the bench's work, not the receiver's, so concurrent fetches verify
// after all of them have finished instead of taking CPU from the fetches still running.
Fetch fetch_unverified(const FetchSpec& f, const Served& sv, std::optional<ReceiveOutcome>& out) {
  Fetch r;
  r.ctx = f.ctx;
  r.policy = f.policy;
  r.tenant = f.tenant.name;
  ReceiverOptions ro;
  ro.host = f.host;
  ro.port = f.port;
  ro.tls = f.tls;
  ro.context = sv.contexts.at(f.ctx);
  ro.slo_s = f.slo_s;
  ro.policy = parse_policy(f.policy);
  ro.model = sv.model;
  ro.prefill_rate = f.prefill_rate;
  ro.profiles = f.profiles;
  ro.stall_timeout_s = f.stall_timeout_s;
  ro.total_timeout_s = f.total_timeout_s;
  ro.tenant = f.tenant.name;
  ro.key = f.tenant.key;
  const auto t0 = Clock::now();
  try {
    out.emplace(receive(ro));
    r.completed = true;
    r.ttft_ms = out->result.ttft_ms;
    r.bytes = out->result.bytes;
    r.plan = out->result.plan;
    for (const auto& c : out->result.chunks) r.fallback |= !c.fallback.empty();
  } catch (const kvstream::Error& e) {
    r.error = e.what();
    r.code = error_code_name(e.code());
  } catch (const std::exception& e) {
    r.error = e.what();
    r.code = "untyped";
  }
  r.wall_s = seconds_since(t0);
  return r;
}

// Compares a completed fetch bit for bit with a local decode of the plan it took.
void verify(Fetch& r, const ReceiveOutcome& out, const Served& sv) {
  r.verify = verify_fetch(out, *sv.containers.at(r.ctx), *sv.profile, sv.model);
  r.exact = r.verify.empty();
}

Fetch fetch(const FetchSpec& f, const Served& sv) {
  std::optional<ReceiveOutcome> out;
  Fetch r = fetch_unverified(f, sv, out);
  if (out) verify(r, *out, sv);
  return r;
}

// A relay of `link` in front of the sender, for one receiver.
std::unique_ptr<netsim::Relay> relay_for(const SenderRef& s, const Link& link, netsim::FaultConfig fault = {}) {
  netsim::RelayConfig c;
  c.trace = netsim::Trace::constant(link.mbps * 1e6);
  c.connect_host = s.host;
  c.connect_port = s.port;
  c.delay_ns = netsim::seconds_to_ns(link.delay_ms / 1e3);
  c.fault = fault;
  auto r = std::make_unique<netsim::Relay>(c);
  r->start();
  return r;
}

// Fetches `specs` all at once, each through its own relay of `link`.
std::vector<Fetch> fetch_concurrently(const SenderRef& s, const Link& link, std::vector<FetchSpec> specs, const Served& sv) {
  std::vector<std::unique_ptr<netsim::Relay>> relays;
  for (auto& f : specs) {
    relays.push_back(relay_for(s, link));
    f.port = relays.back()->port();
  }
  std::vector<Fetch> out(specs.size());
  std::vector<std::optional<ReceiveOutcome>> received(specs.size());
  std::vector<std::thread> threads;
  std::atomic<size_t> ready{0};
  for (size_t i = 0; i < specs.size(); ++i)
    threads.emplace_back([&, i] {
      ++ready;
      while (ready < specs.size()) std::this_thread::yield();  // start together
      out[i] = fetch_unverified(specs[i], sv, received[i]);
    });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < specs.size(); ++i)
    if (received[i]) verify(out[i], *received[i], sv);
  return out;
}

Fetch fetch_alone(const SenderRef& s, const Link& link, FetchSpec spec, const Served& sv) {
  return fetch_concurrently(s, link, {std::move(spec)}, sv).front();
}

// A fresh in-memory profile cache (no directory): the part's first fetch gets the profile from the
// sender, every later one finds it with its decode tables.
std::shared_ptr<ProfileCache> fresh_profiles() { return std::make_shared<ProfileCache>(); }

// One fetch of every context: puts the profile into `profiles` (so that later concurrent
// fetches find it cached and do not race to write it) and every context into the sender's cache
// (so that no measured fetch pays for a cold parse).
void warm_up(const SenderRef& s, const Tenant& t, const Served& sv, const std::shared_ptr<ProfileCache>& profiles) {
  for (size_t c = 0; c < sv.contexts.size(); ++c) {
    FetchSpec f;
    f.host = s.host;
    f.port = s.port;
    f.tls = s.tls;
    f.tenant = t;
    f.ctx = c;
    f.profiles = profiles;
    const auto r = fetch(f, sv);
    if (!r.completed) throw std::runtime_error("reliability: the warm-up fetch failed: " + r.error);
  }
}

json fetches_json(const std::vector<Fetch>& v) {
  json a = json::array();
  for (const auto& f : v) a.push_back(f.to_json());
  return a;
}

}  // namespace

const std::vector<std::string>& honest_policies() {
  static const std::vector<std::string> p = {"adaptive", "fixed:q8", "cachegen", "text",
                                             "fixed:max", "fixed:min", "fixed:q4", "fixed:fp16"};
  return p;
}

Served Served::load(const std::string& root, const std::string& tenant, const model::Model* model) {
  Served s;
  s.root = root;
  s.model = model;
  const fs::path dir = fs::path(root) / tenant;
  std::vector<std::string> ids;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".kvs") ids.push_back(e.path().stem().string());
  std::sort(ids.begin(), ids.end());
  if (ids.empty()) throw std::runtime_error("reliability: no contexts in " + dir.string());
  for (const auto& id : ids) {
    s.contexts.push_back(id);
    s.containers.push_back(std::make_shared<const codec::ContainerReader>(codec::ContainerReader::open((dir / (id + ".kvs")).string())));
  }
  ContextDir d(dir.string());
  const auto bytes = d.profile_bytes(hash_hex(s.containers.front()->info().profile_hash));
  if (!bytes) throw std::runtime_error("reliability: the contexts' profile is not in " + dir.string());
  s.profile = std::make_shared<const codec::Profile>(codec::parse_profile(*bytes, dir.string()));
  return s;
}

nlohmann::json run_hostile(const HostileSuite& s, const Served& sv) {
  const auto profiles = fresh_profiles();
  for (const auto& t : s.honest) warm_up(s.sender, t, sv, profiles);
  std::vector<FetchSpec> specs;
  for (int i = 0; i < s.honest_receivers; ++i) {
    FetchSpec f;
    f.tls = s.sender.tls;
    f.tenant = s.honest[size_t(i) % s.honest.size()];
    f.ctx = size_t(i) % sv.contexts.size();
    f.policy = honest_policies()[size_t(i) % honest_policies().size()];
    f.prefill_rate = s.prefill_rate;
    f.profiles = profiles;
    specs.push_back(f);
  }
  HostileOptions ho;
  ho.host = s.sender.host;
  ho.port = s.sender.port;
  ho.connections = s.hostile_connections;
  ho.tenant = s.hostile.name;
  ho.key = s.hostile.key;
  ho.context = sv.contexts.front();
  ho.level = uint16_t(sv.containers.front()->info().level_index("fp16"));
  ho.chunks = sv.containers.front()->info().num_chunks;
  std::vector<std::vector<Fetch>> base, loaded;
  std::vector<int> open_at_fetch;
  json hostile_stats = json::array();
  uint64_t peak = 0;
  for (int round = 0; round < s.rounds; ++round) {
    base.push_back(fetch_concurrently(s.sender, s.link, specs, sv));
    HostileLoad load(ho);
    load.start();
    const auto t0 = Clock::now();
    while ((load.open_now() < s.required_open || seconds_since(t0) < 3) && seconds_since(t0) < 30)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    open_at_fetch.push_back(load.open_now());
    {
      RssSampler rss(s.sender.pid);
      loaded.push_back(fetch_concurrently(s.sender, s.link, specs, sv));
      peak = std::max(peak, rss.peak());
    }
    open_at_fetch.back() = std::min(open_at_fetch.back(), load.open_now());
    load.stop();
    hostile_stats.push_back(load.stats());
  }
  json receivers = json::array();
  double max_ratio = 0;
  std::vector<double> ratios;
  bool all_exact = true;
  for (size_t i = 0; i < specs.size(); ++i) {
    std::vector<double> b, l;
    for (int r = 0; r < s.rounds; ++r) {
      const auto& fb = base[size_t(r)][i];
      const auto& fl = loaded[size_t(r)][i];
      all_exact = all_exact && fb.exact && fl.exact;
      b.push_back(fb.ttft_ms);
      l.push_back(fl.ttft_ms);
    }
    const double ratio = median(b) > 0 ? median(l) / median(b) : 0;
    ratios.push_back(ratio);
    max_ratio = std::max(max_ratio, ratio);
    receivers.push_back({{"context", specs[i].ctx}, {"policy", specs[i].policy}, {"tenant", specs[i].tenant.name},
                         {"unloaded_ttft_ms", b}, {"loaded_ttft_ms", l}, {"median_unloaded_ms", median(b)},
                         {"median_loaded_ms", median(l)}, {"ratio", ratio}});
  }
  json fetches = json::array();
  for (int r = 0; r < s.rounds; ++r) fetches.push_back({{"unloaded", fetches_json(base[size_t(r)])}, {"loaded", fetches_json(loaded[size_t(r)])}});
  const int min_open = open_at_fetch.empty() ? 0 : *std::min_element(open_at_fetch.begin(), open_at_fetch.end());
  json j = {{"hostile_connections", s.hostile_connections},
            {"hostile_open_during_fetches", open_at_fetch},
            {"hostile_by_kind", hostile_stats},
            {"honest_receivers", s.honest_receivers},
            {"rounds", s.rounds},
            {"link", {{"mbps_per_receiver", s.link.mbps}, {"delay_ms", s.link.delay_ms}}},
            {"receivers", receivers},
            {"max_ttft_ratio", max_ratio},
            {"median_ttft_ratio", median(ratios)},
            {"all_exact", all_exact},
            {"sender_rss", rss_json(s.sender.pid, peak, s.rss_bound_bytes)},
            {"fetches", fetches}};
  j["required_open"] = s.required_open;
  j["pass"] = {{"hostile_at_once", min_open >= s.required_open},
               {"all_exact", all_exact},
               {"ttft_within_bound", max_ratio <= s.ttft_ratio_bound},
               {"rss_within_bound", j["sender_rss"]["within_bound"]}};
  return j;
}

nlohmann::json run_honest(const HonestSuite& s, const Served& sv) {
  const auto profiles = fresh_profiles();
  for (const auto& t : s.tenants) warm_up(s.sender, t, sv, profiles);
  const size_t n_ctx = sv.contexts.size(), n_pol = honest_policies().size();
  std::vector<FetchSpec> specs;
  for (int i = 0; i < s.receivers; ++i) {
    FetchSpec f;
    f.tls = s.sender.tls;
    f.tenant = s.tenants[size_t(i) % s.tenants.size()];
    f.ctx = size_t(i) % n_ctx;
    f.policy = honest_policies()[(size_t(i) / n_ctx + size_t(i)) % n_pol];
    f.prefill_rate = s.prefill_rate;
    f.profiles = profiles;
    specs.push_back(f);
  }
  // The single-receiver TTFT of every distinct (context, policy), at the same per-receiver link.
  std::map<std::pair<size_t, std::string>, std::vector<double>> single;
  std::vector<Fetch> single_runs;
  for (int rep = 0; rep < s.single_reps; ++rep)
    for (const auto& f : specs) {
      auto& v = single[{f.ctx, f.policy}];
      if (int(v.size()) > rep) continue;
      single_runs.push_back(fetch_alone(s.sender, s.link, f, sv));
      v.push_back(single_runs.back().ttft_ms);
    }
  std::vector<Fetch> together;
  uint64_t peak = 0;
  // Where the concurrent phase's CPU went: the sender's process, and this one (the 64 receivers'
  // decode and recompute, and their relays), against its wall time and the machine's load.
  const double cpu0 = self_cpu_seconds(), scpu0 = s.sender.pid > 0 ? cpu_seconds_of(s.sender.pid) : 0;
  const double load0 = load_average();
  const auto t0 = std::chrono::steady_clock::now();
  {
    RssSampler rss(s.sender.pid);
    together = fetch_concurrently(s.sender, s.link, specs, sv);
    peak = rss.peak();
  }
  const json phase = {
      {"wall_s", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()},
      {"sender_cpu_s", s.sender.pid > 0 ? json(cpu_seconds_of(s.sender.pid) - scpu0) : json(nullptr)},
      {"receivers_and_relays_cpu_s", self_cpu_seconds() - cpu0},
      {"loadavg_1min", {load0, load_average()}},
      {"cpus", std::thread::hardware_concurrency()}};
  json receivers = json::array();
  double max_ratio = 0;
  bool all_exact = true;
  for (const auto& f : single_runs) all_exact = all_exact && f.exact;
  for (size_t i = 0; i < specs.size(); ++i) {
    const double alone = median(single[{specs[i].ctx, specs[i].policy}]);
    const double ratio = alone > 0 ? together[i].ttft_ms / alone : 0;
    max_ratio = std::max(max_ratio, ratio);
    all_exact = all_exact && together[i].exact;
    receivers.push_back({{"context", specs[i].ctx}, {"policy", specs[i].policy}, {"tenant", specs[i].tenant.name},
                         {"single_ttft_ms", alone}, {"concurrent_ttft_ms", together[i].ttft_ms}, {"ratio", ratio},
                         {"exact", together[i].exact}});
  }
  json j = {{"receivers", s.receivers},
            {"distinct_pairs", single.size()},
            {"link", {{"mbps_per_receiver", s.link.mbps}, {"delay_ms", s.link.delay_ms}}},
            {"per_receiver", receivers},
            {"max_ttft_ratio", max_ratio},
            {"all_exact", all_exact},
            {"sender_rss", rss_json(s.sender.pid, peak, s.rss_bound_bytes)},
            {"concurrent_phase", phase},
            {"single_fetches", fetches_json(single_runs)},
            {"concurrent_fetches", fetches_json(together)}};
  j["pass"] = {{"all_exact", all_exact},
               {"ttft_within_bound", max_ratio <= s.ttft_ratio_bound},
               {"rss_within_bound", j["sender_rss"]["within_bound"]}};
  return j;
}

nlohmann::json run_faults(const FaultSuite& s, const Served& sv) {
  const auto profiles = fresh_profiles();
  warm_up(s.sender, s.tenant, sv, profiles);
  FetchSpec base;
  base.tls = s.sender.tls;
  base.tenant = s.tenant;
  base.policy = s.policy;
  base.prefill_rate = s.prefill_rate;
  base.profiles = profiles;
  base.stall_timeout_s = s.stall_timeout_s;
  base.total_timeout_s = s.total_timeout_s;
  // A clean fetch gives the stream's length: faults strike uniformly inside it.
  const Fetch clean = fetch_alone(s.sender, s.link, base, sv);
  if (!clean.exact) throw std::runtime_error("reliability: the clean fetch failed: " + clean.error + clean.verify);
  json kinds = json::object();
  bool all_ok = true;
  for (auto [kind, count] : {std::pair{netsim::FaultKind::kCut, s.cuts}, std::pair{netsim::FaultKind::kCorrupt, s.corruptions},
                             std::pair{netsim::FaultKind::kStall, s.stalls}}) {
    netsim::FaultConfig fc{kind, s.seed, 0, std::max<uint64_t>(2, clean.bytes)};
    auto relay = relay_for(s.sender, s.link, fc);
    int exact = 0, clear_error = 0, wrong = 0, hung = 0, untyped = 0;
    std::map<std::string, int> by_code;
    std::map<std::string, int> examples;
    double max_wall = 0;
    json runs = json::array();
    for (int i = 0; i < count; ++i) {
      FetchSpec f = base;
      f.port = relay->port();
      f.ctx = size_t(i) % sv.contexts.size();
      const Fetch r = fetch(f, sv);
      max_wall = std::max(max_wall, r.wall_s);
      const bool over_time = r.wall_s > s.stall_timeout_s + s.total_timeout_s;
      if (r.completed && r.exact) ++exact;
      else if (r.completed) ++wrong;  // a cache that is not what its plan must produce
      else if (r.code == "untyped") ++untyped;
      else ++clear_error;
      if (over_time) ++hung;
      if (!r.completed) ++by_code[r.code];
      if (!r.completed && examples.size() < 8) ++examples[r.error.substr(0, 120)];
      json rj = r.to_json();
      rj["fault_offset"] = netsim::fault_offset(fc, uint32_t(i + 1));
      runs.push_back(rj);
    }
    relay->stop();
    const auto rs = relay->stats();
    int struck = 0;
    for (const auto& c : rs.per_connection) struck += c.fault_struck;
    const bool ok = wrong == 0 && hung == 0 && untyped == 0 && exact + clear_error == count;
    all_ok = all_ok && ok;
    kinds[netsim::fault_kind_name(kind)] = {{"runs", count},     {"faults_struck", struck}, {"exact_cache", exact},
                                            {"clear_error", clear_error}, {"wrong_cache", wrong}, {"hung", hung},
                                            {"untyped_error", untyped}, {"errors_by_code", by_code},
                                            {"error_examples", examples}, {"max_wall_s", max_wall},
                                            {"offset_range", {fc.min_offset, fc.max_offset}}, {"ok", ok}, {"runs_detail", runs}};
  }
  return {{"policy", s.policy},
          {"stall_timeout_s", s.stall_timeout_s},
          {"total_timeout_s", s.total_timeout_s},
          {"clean_stream_bytes", clean.bytes},
          {"link", {{"mbps", s.link.mbps}, {"delay_ms", s.link.delay_ms}}},
          {"seed", s.seed},
          {"kinds", kinds},
          {"pass", {{"never_wrong_never_hung", all_ok}}}};
}

namespace {

// Streams one level's chunks over and over on one connection (CHUNK_GETs 16 ahead) until `target`
// bytes arrived: the transport's cost per byte, without decoding.
struct RawStream {
  asio::io_context io;
  std::unique_ptr<Transport> t;
  FrameReader reader{Peer::kSender, kMaxPreAuthPayload};
  std::array<uint8_t, 1 << 16> rx{};
  std::deque<std::shared_ptr<std::vector<uint8_t>>> out;
  bool writing = false, serving = false;
  std::string error;
  uint64_t bytes = 0, target = 0;
  uint32_t chunks = 1, next_chunk = 0, outstanding = 0;
  uint16_t level = 0;
  Tenant tenant;
  Nonce cn{};
  std::string context;

  void send(std::vector<uint8_t> f) {
    out.push_back(std::make_shared<std::vector<uint8_t>>(std::move(f)));
    if (!writing) write_next();
  }
  void write_next() {
    if (out.empty()) {
      writing = false;
      return;
    }
    writing = true;
    auto b = out.front();
    async_write_all(*t, {asio::buffer(*b), asio::const_buffer()}, nullptr, [this, b](const asio::error_code& ec) {
      if (ec) return fail("write: " + ec.message());
      out.pop_front();
      write_next();
    });
  }
  void fail(const std::string& e) {
    if (error.empty()) error = e;
    t->close();
    io.stop();
  }
  void request_more() {
    while (outstanding < 16) {
      send(encode(ChunkGet{next_chunk, level}));
      next_chunk = (next_chunk + 1) % chunks;
      ++outstanding;
    }
  }
  void on_frame(const Frame& f) {
    switch (f.type) {
      case FrameType::kHelloAck: {
        const auto a = decode_hello_ack(f);
        if (!tenant.key.empty()) send(encode(AuthMsg{client_proof(tenant.key, tenant.name, cn, a.server_nonce)}));
        if (tenant.key.empty()) reader.set_max_payload(4u << 20);
        send(encode(Request{context, 1000, "raw"}));
        return;
      }
      case FrameType::kAuthOk: reader.set_max_payload(4u << 20); return;
      case FrameType::kManifest:
        reader.set_max_payload(64u << 20);
        serving = true;
        return request_more();
      case FrameType::kChunkData:
        bytes += f.payload.size() + kHeaderSize;
        --outstanding;
        if (bytes >= target) return fail("");
        return request_more();
      case FrameType::kError: return fail("sender error: " + decode_error(f).message);
      default: return fail("unexpected frame");
    }
  }
  void read() {
    t->async_read_some(asio::buffer(rx), [this](const asio::error_code& ec, size_t n) {
      if (ec) return fail("read: " + ec.message());
      try {
        reader.feed(rx.data(), n);
        while (auto f = reader.next()) {
          on_frame(*f);
          if (io.stopped()) return;
        }
      } catch (const std::exception& e) {
        return fail(e.what());
      }
      read();
    });
  }
};

// Bytes/s and seconds of streaming `target` bytes of `level` from `s`.
json raw_stream(const SenderRef& s, const Tenant& t, const Served& sv, const std::string& level, uint64_t target) {
  RawStream r;
  r.target = target;
  r.tenant = t;
  r.context = sv.contexts.front();
  r.chunks = sv.containers.front()->info().num_chunks;
  r.level = uint16_t(sv.containers.front()->info().level_index(level));
  asio::ip::tcp::socket sock(r.io);
  sock.connect({asio::ip::make_address(s.host), s.port});
  sock.set_option(asio::ip::tcp::no_delay(true));
  if (s.tls) {
    auto c = *s.tls;
    if (c.server_name.empty()) c.server_name = s.host;
    r.t = make_tls_transport(std::move(sock), make_client_tls(c), false, c.server_name);
  } else {
    r.t = make_plain_transport(std::move(sock));
  }
  const double cpu0 = self_cpu_seconds(), scpu0 = s.pid > 0 ? cpu_seconds_of(s.pid) : 0;
  const auto t0 = Clock::now();
  r.t->async_handshake([&r](const asio::error_code& ec) {
    if (ec) return r.fail("TLS handshake: " + ec.message());
    Hello h;
    h.agent = "raw-stream";
    h.tenant = r.tenant.key.empty() ? "" : r.tenant.name;
    r.cn = h.client_nonce = random_nonce();
    r.send(encode(h));
    r.read();
  });
  r.io.run();
  const double wall = seconds_since(t0);
  const double cpu = self_cpu_seconds() - cpu0, scpu = s.pid > 0 ? cpu_seconds_of(s.pid) - scpu0 : 0;
  const double gb = double(r.bytes) / 1e9;
  if (!r.error.empty()) throw std::runtime_error("reliability: raw stream failed: " + r.error);
  return {{"bytes", r.bytes},
          {"seconds", wall},
          {"gbit_per_s", 8 * gb / wall},
          {"receiver_cpu_s_per_gb", cpu / gb},
          {"sender_cpu_s_per_gb", s.pid > 0 ? json(scpu / gb) : json(nullptr)}};
}

}  // namespace

nlohmann::json run_security(const SecuritySuite& s, const Served& sv) {
  struct Mode {
    const char* name;
    const SenderRef* sender;
    Tenant tenant;
  };
  const std::vector<Mode> modes = {{"insecure", &s.insecure, Tenant{}}, {"auth", &s.auth, s.tenant}, {"auth_tls", &s.tls, s.tenant}};
  const auto profiles = fresh_profiles();
  for (const auto& m : modes) warm_up(*m.sender, m.tenant, sv, profiles);
  // TTFT on loopback, the modes alternating (side by side on a noisy machine).
  std::map<std::string, std::vector<double>> ttft;
  bool all_exact = true;
  for (int rep = 0; rep < s.ttft_reps; ++rep)
    for (const auto& m : modes) {
      FetchSpec f;
      f.host = m.sender->host;
      f.port = m.sender->port;
      f.tls = m.sender->tls;
      f.tenant = m.tenant;
      f.ctx = size_t(rep) % sv.contexts.size();
      f.profiles = profiles;
      const auto r = fetch(f, sv);
      all_exact = all_exact && r.exact;
      ttft[m.name].push_back(r.ttft_ms);
    }
  json j = json::object();
  const double base = median(ttft["insecure"]);
  for (const auto& m : modes) {
    const auto& v = ttft[m.name];
    j[m.name] = {{"ttft_ms_median", median(v)}, {"ttft_ms_p90", quantile(v, 0.9)}, {"ttft_vs_insecure", median(v) / base},
                 {"stream", raw_stream(*m.sender, m.tenant, sv, "fp16", s.bytes_per_mode)}};
  }
  return {{"policy", "fixed:q8"}, {"ttft_reps", s.ttft_reps}, {"bytes_per_mode", s.bytes_per_mode}, {"modes", j}, {"all_exact", all_exact}};
}

void prepare_contexts(const std::string& root, const std::vector<std::string>& tenants, int count, int tokens,
                      const model::Model& m, const model::Tokenizer& tok, const std::string& text,
                      const std::string& profile_path) {
  const auto profile = codec::load_profile(profile_path);
  const fs::path shared = fs::path(root) / "contexts";
  fs::create_directories(shared);
  const auto ctxs = model::cut_contexts(tok, text, model::kEvalRange, count, tokens, 16);
  auto ladder = codec::default_ladder(profile);
  codec::add_baselines(ladder);
  for (int i = 0; i < count; ++i) {
    const fs::path p = shared / ("ctx" + std::to_string(i) + ".kvs");
    if (fs::exists(p)) continue;
    KvCache kv = m.new_cache(false);
    m.recompute(kv, ctxs.at(size_t(i)).context);
    const auto bytes = codec::encode_container(kv, profile, ladder, 64);
    std::ofstream o(p, std::ios::binary);
    o.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    if (!o) throw std::runtime_error("reliability: cannot write " + p.string());
  }
  for (const auto& t : tenants) {
    const fs::path d = fs::path(root) / t;
    fs::create_directories(d);
    auto link = [&](const fs::path& target, const fs::path& name) {
      std::error_code ec;
      fs::remove(name, ec);
      fs::create_symlink(fs::absolute(target), name);
    };
    for (int i = 0; i < count; ++i)
      link(shared / ("ctx" + std::to_string(i) + ".kvs"), d / ("ctx" + std::to_string(i) + ".kvs"));
    link(profile_path, d / fs::path(profile_path).filename());
  }
}

void raise_open_file_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
}

}  // namespace kvstream::streamer::bench
