// `kvstream bench netsim`: bulk transfers through an in-process relay (real loopback sockets) vs the
// simulator, one per trace; writes JSON (see bench/bulk.h bench_netsim).
#include <fstream>
#include <iostream>

#include "cli/command_registry.h"
#include "bench/bulk.h"

KVSTREAM_COMMAND("bench netsim", "Relay throughput vs trace capacity and vs the simulator (real sockets)", [](CLI::App& sub) {
  auto traces = std::make_shared<std::vector<std::string>>();
  auto opt = std::make_shared<kvstream::netsim::BenchOptions>();
  auto delay_ms = std::make_shared<double>(20.0);
  auto out = std::make_shared<std::string>();
  auto sim_traces = std::make_shared<std::vector<std::string>>();
  sub.add_option("--trace", *traces, "Trace files or const:<rate> specs (repeatable)")->required();
  sub.add_option("--seconds", opt->seconds, "Size each transfer to last this long at the trace's capacity");
  sub.add_option("--scale", opt->scale, "Capacity multiplier for every trace");
  sub.add_option("--delay-ms", *delay_ms, "One-way delay (ms)");
  sub.add_option("--queue-bytes", opt->queue_bytes, "Relay bottleneck queue (bytes)");
  sub.add_option("--jobs", opt->jobs, "Transfers run at once");
  sub.add_option("--out", *out, "Write the JSON here (default: stdout)");
  sub.add_option("--sim-trace", *sim_traces, "Traces for the simulator speed test (repeatable; default: --trace)");
  return kvstream::cli::Action([=] {
    opt->delay_ns = kvstream::netsim::seconds_to_ns(*delay_ms / 1e3);
    auto j = kvstream::netsim::bench_netsim(*traces, *opt, &std::cerr);
    j["simulator_speed"] = kvstream::netsim::bench_simulator_speed(sim_traces->empty() ? *traces : *sim_traces);
    std::cerr << "simulator: " << j["simulator_speed"].dump() << std::endl;
    if (out->empty()) {
      std::cout << j.dump(2) << "\n";
    } else {
      std::ofstream f(*out);
      if (!(f << j.dump(2) << "\n")) throw std::runtime_error("cannot write " + *out);
    }
    return j["summary"]["all_ok"].get<bool>() ? 0 : 2;
  });
});
