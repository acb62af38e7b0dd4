// `kvstream relay`: run the shaping TCP relay until SIGINT/SIGTERM (or --duration-s), then write
// its statistics. The receiver connects to --listen; the relay connects to the sender at --connect.
#include <csignal>
#include <ctime>
#include <fstream>
#include <iostream>

#include "cli/command_registry.h"
#include "cli/stop_signal.h"
#include "netsim/relay.h"

namespace {
std::pair<std::string, std::uint16_t> host_port(const std::string& s, const char* what) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size())
    throw std::invalid_argument(std::string(what) + ": expected HOST:PORT, got '" + s + "'");
  int port = -1;
  try {
    std::size_t used = 0;
    port = std::stoi(s.substr(colon + 1), &used);
    if (used != s.size() - colon - 1) port = -1;
  } catch (const std::exception&) {
  }
  if (port < 0 || port > 65535) throw std::invalid_argument(std::string(what) + ": bad port in '" + s + "'");
  std::string host = s.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return {host, static_cast<std::uint16_t>(port)};
}

struct RelayOpts {
  std::string trace;
  std::string listen;
  std::string connect;
  std::string stats;
  double delay_ms = 0;
  double scale = 1.0;
  double duration_s = 0;
  std::uint64_t queue_bytes = 1u << 20;
  std::string fault = "none";
  std::uint64_t fault_seed = 1, fault_min_offset = 0, fault_max_offset = 64 * 1024;
};
}  // namespace

KVSTREAM_COMMAND("relay", "Shaping TCP relay: receiver -> relay -> sender, sender->receiver shaped by a trace", [](CLI::App& sub) {
  using Opts = RelayOpts;
  auto o = std::make_shared<Opts>();
  sub.add_option("--trace", o->trace, "Trace file (Mahimahi or cooked) or const:<rate>")->required();
  sub.add_option("--listen", o->listen, "HOST:PORT the receiver connects to (port 0 = any)")->required();
  sub.add_option("--connect", o->connect, "HOST:PORT of the sender")->required();
  sub.add_option("--delay-ms", o->delay_ms, "One-way delay, both directions (ms)");
  sub.add_option("--queue-bytes", o->queue_bytes, "Bottleneck queue (bytes, > 0)");
  sub.add_option("--scale", o->scale, "Capacity multiplier");
  sub.add_option("--stats-json", o->stats, "Write per-second and per-connection statistics here on exit (default: none)");
  sub.add_option("--duration-s", o->duration_s, "Exit after this many seconds (0 = until SIGINT/SIGTERM)");
  sub.add_option("--fault", o->fault,
                 "TESTING: on every connection, at a seeded random offset of the sender->receiver stream: "
                 "cut (reset both sides), corrupt (flip one byte) or stall (forward nothing more); none = off")
      ->capture_default_str();
  sub.add_option("--fault-seed", o->fault_seed, "--fault: seed of the offsets (with the connection number)")
      ->capture_default_str();
  sub.add_option("--fault-min-offset", o->fault_min_offset, "--fault: smallest offset (bytes)")->capture_default_str();
  sub.add_option("--fault-max-offset", o->fault_max_offset, "--fault: offsets are below this (bytes)")->capture_default_str();
  return kvstream::cli::Action([o] {
    namespace ns = kvstream::netsim;
    if (o->delay_ms < 0) throw std::invalid_argument("--delay-ms must be >= 0");
    ns::RelayConfig c;
    c.trace = ns::Trace::load(o->trace, o->scale);
    std::tie(c.listen_host, c.listen_port) = host_port(o->listen, "--listen");
    std::tie(c.connect_host, c.connect_port) = host_port(o->connect, "--connect");
    c.delay_ns = ns::seconds_to_ns(o->delay_ms / 1e3);
    c.queue_bytes = o->queue_bytes;
    if (o->fault != "none")
      c.fault = ns::FaultConfig{ns::parse_fault_kind(o->fault), o->fault_seed, o->fault_min_offset, o->fault_max_offset};
    const kvstream::cli::StopSignal stop;  // before any thread starts
    ns::Relay relay(c);
    relay.start();
    if (c.fault.kind != ns::FaultKind::kNone)
      std::cout << "relay: fault " << ns::fault_kind_name(c.fault.kind) << " at offsets [" << c.fault.min_offset << ", "
                << c.fault.max_offset << "), seed " << c.fault.seed << std::endl;
    std::cout << "relay listening on " << c.listen_host << ":" << relay.port() << " -> " << c.connect_host << ":"
              << c.connect_port << " (" << c.trace.name() << ", mean " << c.trace.mean_bps() / 1e6 << " Mbit/s)"
              << std::endl;
    stop.wait(o->duration_s);
    relay.stop();
    const auto st = relay.stats();
    std::cout << "relay: " << st.connections << " connections, " << st.bytes_down << " bytes down, " << st.bytes_up
              << " bytes up" << std::endl;
    if (!o->stats.empty()) {
      auto j = st.to_json();
      j["trace"] = c.trace.name();
      j["scale"] = c.trace.scale();
      j["delay_ms"] = o->delay_ms;
      j["queue_bytes"] = o->queue_bytes;
      std::ofstream f(o->stats);
      if (!(f << j.dump(2) << "\n")) throw std::runtime_error("cannot write " + o->stats);
    }
    return 0;
  });
});
