// bench/bulk.cpp — one bulk transfer sender -> Relay -> receiver on loopback, all asynchronous on
// the calling thread's io_context (the relay runs its own thread), with a watchdog timer.
#include "bench/bulk.h"

#include <asio.hpp>
#include <atomic>
#include <cmath>
#include <cstring>
#include <mutex>
#include <thread>
#include <stdexcept>

#include "netsim/simulator.h"

namespace kvstream::netsim {

using asio::ip::tcp;
using SteadyTime = std::chrono::steady_clock;

nlohmann::json BulkResult::to_json(bool with_relay_stats) const {
  nlohmann::json j{{"trace", trace},
                   {"bytes", bytes},
                   {"delay_s", delay_s},
                   {"start_s", start_s},
                   {"relay_end_s", relay_end_s},
                   {"relay_s", relay_s},
                   {"sim_end_s", sim_end_s},
                   {"sim_s", sim_s},
                   {"sim_vs_relay", sim_vs_relay},
                   {"achieved_mbps", achieved_mbps},
                   {"capacity_mbps", capacity_mbps},
                   {"efficiency", efficiency},
                   {"data_ok", data_ok}};
  if (with_relay_stats) j["relay_stats"] = relay_stats;
  return j;
}

namespace {
constexpr std::size_t kPatternPeriod = 65521;  // prime: a shifted or repeated chunk will not match
constexpr std::size_t kChunk = 256 * 1024;

struct Transfer {
  asio::io_context io;
  tcp::acceptor acceptor{io};
  tcp::socket sender{io}, receiver{io};
  asio::steady_timer watchdog{io};
  std::vector<char> pattern;  // pattern repeated to cover kChunk + kPatternPeriod
  std::vector<char> rbuf = std::vector<char>(kChunk);
  std::uint64_t total = 0, sent = 0, received = 0;
  SteadyTime::time_point send_start{}, last_recv{};
  bool started = false, recv_done = false, corrupt = false;
  std::string error;

  void fail(const std::string& what) {
    if (error.empty()) error = what;
    asio::error_code ignore;
    acceptor.close(ignore);
    sender.close(ignore);
    receiver.close(ignore);
    watchdog.cancel();
  }

  void send_more() {
    if (sent == total) {
      asio::error_code ignore;
      sender.shutdown(tcp::socket::shutdown_send, ignore);
      sender.close(ignore);
      return;
    }
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, total - sent));
    const char* p = pattern.data() + (sent % kPatternPeriod);
    asio::async_write(sender, asio::buffer(p, n), [this](const asio::error_code& ec, std::size_t k) {
      if (ec) return fail("sender write: " + ec.message());
      sent += k;
      send_more();
    });
  }

  void recv_more() {
    receiver.async_read_some(asio::buffer(rbuf), [this](const asio::error_code& ec, std::size_t k) {
      if (k > 0) {
        if (received + k > total ||
            std::memcmp(rbuf.data(), pattern.data() + (received % kPatternPeriod), k) != 0)
          corrupt = true;
        received += k;
        last_recv = SteadyTime::now();
      }
      if (ec == asio::error::eof) {
        recv_done = true;
        watchdog.cancel();
        return;
      }
      if (ec) return fail("receiver read: " + ec.message());
      recv_more();
    });
  }
};
}  // namespace

BulkResult run_bulk_transfer(const Trace& trace, const BulkOptions& options) {
  if (options.bytes == 0) throw std::invalid_argument("bulk transfer: bytes must be > 0");
  Transfer x;
  x.total = options.bytes;
  x.pattern.resize(kChunk + kPatternPeriod);
  std::uint32_t h = 2166136261u;
  for (std::size_t i = 0; i < x.pattern.size(); ++i) {
    if (i < kPatternPeriod) {
      h = (h ^ static_cast<std::uint32_t>(i)) * 16777619u;
      x.pattern[i] = static_cast<char>(h >> 24);
    } else {
      x.pattern[i] = x.pattern[i - kPatternPeriod];
    }
  }
  const tcp::endpoint local(asio::ip::address_v4::loopback(), 0);
  x.acceptor.open(local.protocol());
  x.acceptor.bind(local);
  x.acceptor.listen();

  RelayConfig rc;
  rc.trace = trace;
  rc.connect_port = x.acceptor.local_endpoint().port();
  rc.delay_ns = options.delay_ns;
  rc.queue_bytes = options.queue_bytes;
  Relay relay(rc);
  relay.start();

  x.acceptor.async_accept(x.sender, [&x](const asio::error_code& ec) {
    if (ec) return x.fail("sender accept: " + ec.message());
    x.send_start = SteadyTime::now();
    x.started = true;
    x.send_more();
  });
  x.receiver.async_connect(tcp::endpoint(asio::ip::address_v4::loopback(), relay.port()),
                           [&x](const asio::error_code& ec) {
                             if (ec) return x.fail("receiver connect: " + ec.message());
                             x.recv_more();
                           });
  x.watchdog.expires_after(std::chrono::duration_cast<SteadyTime::duration>(std::chrono::duration<double>(options.timeout_s)));
  x.watchdog.async_wait([&x](const asio::error_code& ec) {
    if (!ec) x.fail("timed out after the watchdog limit");
  });
  x.io.run();
  relay.stop();

  if (!x.error.empty()) throw std::runtime_error("bulk transfer over " + trace.name() + ": " + x.error);
  if (!x.recv_done || !x.started || x.received != x.total)
    throw std::runtime_error("bulk transfer over " + trace.name() + ": received " + std::to_string(x.received) +
                             " of " + std::to_string(x.total) + " bytes");
  const auto epoch = relay.link_epoch();
  if (!epoch) throw std::runtime_error("bulk transfer: relay never accepted the receiver");

  BulkResult r;
  r.trace = trace.name();
  r.bytes = x.total;
  r.delay_s = ns_to_seconds(relay.config().delay_ns);  // with the trace's path delay
  r.data_ok = !x.corrupt;
  r.start_s = std::chrono::duration<double>(x.send_start - *epoch).count();
  r.relay_end_s = std::chrono::duration<double>(x.last_recv - *epoch).count();
  r.relay_s = r.relay_end_s - r.start_s;
  Simulator sim(trace, ns_to_seconds(options.delay_ns));  // adds the path delay itself
  r.sim_end_s = sim.send(x.total, std::max(0.0, r.start_s));
  r.sim_s = r.sim_end_s - r.start_s;
  r.sim_vs_relay = r.relay_s > 0 ? r.sim_s / r.relay_s : 0;
  const double link_end = r.relay_end_s - r.delay_s;
  const double link_s = link_end - r.start_s;
  const std::uint64_t cap = trace.bytes_deliverable(seconds_to_ns(r.start_s) - 1, seconds_to_ns(link_end));
  if (link_s > 0) {
    r.achieved_mbps = 8.0 * static_cast<double>(x.total) / link_s / 1e6;
    r.capacity_mbps = 8.0 * static_cast<double>(cap) / link_s / 1e6;
  }
  r.efficiency = cap > 0 ? static_cast<double>(x.total) / static_cast<double>(cap) : 0;
  r.relay_stats = relay.stats().to_json();
  return r;
}

}  // namespace kvstream::netsim

// ---- benchmark driver ----
namespace kvstream::netsim {

nlohmann::json bench_netsim(const std::vector<std::string>& specs, const BenchOptions& o, std::ostream* progress) {
  if (specs.empty()) throw std::invalid_argument("bench netsim: no traces given");
  if (!(o.seconds > 0)) throw std::invalid_argument("bench netsim: seconds must be > 0");
  std::vector<Trace> traces;
  for (const auto& s : specs) traces.push_back(Trace::load(s, o.scale));  // fail fast on bad traces
  std::vector<nlohmann::json> runs(traces.size());
  std::vector<std::string> errors(traces.size());
  std::atomic<std::size_t> next{0};
  std::mutex out_mu;
  auto worker = [&] {
    for (std::size_t i; (i = next.fetch_add(1)) < traces.size();) {
      const Trace& t = traces[i];
      BulkOptions b;
      b.bytes = t.bytes_deliverable(-1, seconds_to_ns(o.seconds));
      b.delay_ns = o.delay_ns;
      b.queue_bytes = o.queue_bytes;
      b.timeout_s = 3 * o.seconds + 30;
      try {
        BulkResult r = run_bulk_transfer(t, b);
        runs[i] = r.to_json();
        runs[i]["spec"] = specs[i];
        runs[i]["trace_mean_mbps"] = t.mean_bps() / 1e6;
        runs[i]["efficiency_ok"] = r.efficiency >= o.efficiency_goal;
        runs[i]["sim_ok"] = std::fabs(r.sim_vs_relay - 1.0) <= o.sim_tolerance;
        runs[i]["duration_ok"] = r.relay_s >= o.seconds - 0.5;
        std::lock_guard<std::mutex> lk(out_mu);
        if (progress)
          *progress << specs[i] << ": " << r.bytes << " B in " << r.relay_s << " s (sim " << r.sim_s
                    << " s), achieved " << r.achieved_mbps << " of " << r.capacity_mbps << " Mbit/s ("
                    << 100 * r.efficiency << "%)" << (r.data_ok ? "" : " DATA CORRUPT") << std::endl;
      } catch (const std::exception& e) {
        errors[i] = e.what();
        runs[i] = {{"spec", specs[i]}, {"error", e.what()}};
        std::lock_guard<std::mutex> lk(out_mu);
        if (progress) *progress << specs[i] << ": ERROR " << e.what() << std::endl;
      }
    }
  };
  const int jobs = std::max(1, std::min<int>(o.jobs, static_cast<int>(traces.size())));
  std::vector<std::thread> pool;
  for (int j = 1; j < jobs; ++j) pool.emplace_back(worker);
  worker();
  for (auto& th : pool) th.join();

  nlohmann::json j;
  j["config"] = {{"seconds", o.seconds}, {"scale", o.scale}, {"delay_ms", ns_to_seconds(o.delay_ns) * 1e3},
                 {"queue_bytes", o.queue_bytes}, {"jobs", jobs}, {"efficiency_goal", o.efficiency_goal},
                 {"sim_tolerance", o.sim_tolerance}};
  j["runs"] = runs;
  double min_eff = 1e9, max_dev = 0;
  bool all_ok = true;
  for (auto& r : runs) {
    if (r.contains("error")) {
      all_ok = false;
      continue;
    }
    min_eff = std::min(min_eff, r["efficiency"].get<double>());
    max_dev = std::max(max_dev, std::fabs(r["sim_vs_relay"].get<double>() - 1.0));
    all_ok = all_ok && r["efficiency_ok"].get<bool>() && r["sim_ok"].get<bool>() && r["duration_ok"].get<bool>() &&
             r["data_ok"].get<bool>();
  }
  j["summary"] = {{"runs", runs.size()}, {"min_efficiency", min_eff}, {"max_sim_deviation", max_dev}, {"all_ok", all_ok}};
  return j;
}

nlohmann::json bench_simulator_speed(const std::vector<std::string>& specs, int offsets, int sends) {
  if (offsets < 1 || sends < 1) throw std::invalid_argument("bench_simulator_speed: offsets and sends must be >= 1");
  const auto t0 = SteadyTime::now();
  std::vector<Trace> traces;
  for (const auto& s : specs) traces.push_back(Trace::load(s));
  const auto t1 = SteadyTime::now();
  double checksum = 0;
  std::uint64_t n = 0;
  for (const auto& t : traces) {
    const auto chunk = static_cast<std::uint64_t>(std::max(1.0, t.mean_bps() / 8 / 20));
    for (int k = 0; k < offsets; ++k) {
      Simulator sim(t, 0.02);
      double at = t.period_s() * k / offsets;
      for (int i = 0; i < sends; ++i) {
        const double arrival = sim.send(chunk, at);
        at = arrival + 0.005;
        ++n;
      }
      checksum += at;
    }
  }
  const auto t2 = SteadyTime::now();
  const double load_s = std::chrono::duration<double>(t1 - t0).count();
  const double sim_s = std::chrono::duration<double>(t2 - t1).count();
  return {{"traces", traces.size()}, {"simulations", traces.size() * static_cast<std::size_t>(offsets)},
          {"sends", n}, {"load_s", load_s}, {"simulate_s", sim_s},
          {"sends_per_s", sim_s > 0 ? static_cast<double>(n) / sim_s : 0.0}, {"checksum", checksum}};
}

}  // namespace kvstream::netsim
