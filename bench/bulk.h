// bench/bulk.h — a bulk transfer over real loopback sockets through an in-process Relay, compared
// with the Simulator's prediction for the same bytes and start time (used by `kvstream bench
// netsim` and the end-to-end tests).
//
// Contract: run_bulk_transfer starts a sender (a listening socket on 127.0.0.1:0 that writes
// `bytes` of a deterministic pattern then closes), a Relay pointed at it, and a receiver that
// connects to the relay, reads to EOF and verifies every byte. Times are link time (trace t=0 =
// the relay accepting the receiver). Throws std::runtime_error on socket errors, short or corrupt
// data, or when `timeout_s` passes (everything is torn down first; nothing hangs).
#pragma once
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "netsim/relay.h"
#include "netsim/trace.h"

namespace kvstream::netsim {

struct BulkOptions {
  std::uint64_t bytes = 0;
  TimeNs delay_ns = 0;
  std::uint64_t queue_bytes = 1u << 20;
  double timeout_s = 60;
};

struct BulkResult {
  std::string trace;
  std::uint64_t bytes = 0;
  double delay_s = 0;
  double start_s = 0;        // sender's first write (link time)
  double relay_end_s = 0;    // receiver got the last byte (link time)
  double relay_s = 0;        // relay_end_s - start_s
  double sim_end_s = 0;      // Simulator arrival of the last byte for send(bytes, start_s)
  double sim_s = 0;          // sim_end_s - start_s
  double sim_vs_relay = 0;   // sim_s / relay_s
  double achieved_mbps = 0;  // bytes over [start_s, relay_end_s - delay]
  double capacity_mbps = 0;  // trace capacity over the same interval
  double efficiency = 0;     // achieved / capacity
  bool data_ok = false;
  nlohmann::json relay_stats;
  nlohmann::json to_json(bool with_relay_stats = false) const;
};

BulkResult run_bulk_transfer(const Trace& trace, const BulkOptions& options);

}  // namespace kvstream::netsim

namespace kvstream::netsim {

// The issue-4 benchmark: for each trace spec (file or const:), a bulk transfer of the bytes the
// trace can carry in its first `seconds` seconds (so it lasts >= seconds), through the relay with
// real sockets, side by side with the simulator. `jobs` transfers run at once (each has its own
// relay and link). Returns {"runs": [...BulkResult...], "summary": {...}}; `progress` (may be
// null) gets one line per finished run.
struct BenchOptions {
  double seconds = 10.5;
  double scale = 1.0;
  TimeNs delay_ns = 20'000'000;
  std::uint64_t queue_bytes = 4u << 20;
  int jobs = 1;
  double efficiency_goal = 0.95;  // achieved / capacity
  double sim_tolerance = 0.05;    // |sim_s / relay_s - 1|
};
nlohmann::json bench_netsim(const std::vector<std::string>& specs, const BenchOptions& options,
                            std::ostream* progress);

// Simulator speed: for every trace and each of `offsets` start times spread over its period, a
// stepwise controller loop of `sends` sends (each 1/20 s of mean capacity, handed 5 ms after the
// previous arrival). Returns {"simulations", "sends", "load_s", "simulate_s", "sends_per_s"}.
nlohmann::json bench_simulator_speed(const std::vector<std::string>& specs, int offsets = 10, int sends = 50);

}  // namespace kvstream::netsim
