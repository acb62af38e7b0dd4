// `kvstream netsim run`: simulate one transfer of N bytes over a trace (virtual time).
#include <iomanip>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/command_registry.h"
#include "netsim/simulator.h"

KVSTREAM_COMMAND("netsim run", "Simulate when N bytes handed to a trace-driven link arrive", [](CLI::App& sub) {
  auto trace = std::make_shared<std::string>();
  auto bytes = std::make_shared<std::uint64_t>(0);
  auto delay_ms = std::make_shared<double>(0.0);
  auto scale = std::make_shared<double>(1.0);
  auto at = std::make_shared<double>(0.0);
  auto json = std::make_shared<bool>(false);
  sub.add_option("--trace", *trace, "Trace file (Mahimahi or cooked) or const:<rate>")->required();
  sub.add_option("--bytes", *bytes, "Bytes to send")->required();
  sub.add_option("--delay-ms", *delay_ms, "One-way propagation delay (ms)");
  sub.add_option("--scale", *scale, "Capacity multiplier");
  sub.add_option("--at", *at, "Time (s into the trace) the bytes are handed to the link");
  sub.add_flag("--json", *json, "Print JSON");
  return kvstream::cli::Action([=] {
    const auto t = kvstream::netsim::Trace::load(*trace, *scale);
    kvstream::netsim::Simulator sim(t, *delay_ms / 1e3);
    const double arrival = sim.send(*bytes, *at);
    const double dur = arrival - *at;
    const double mbps = dur > 0 ? 8.0 * static_cast<double>(*bytes) / dur / 1e6 : 0;
    if (*json) {
      nlohmann::json j{{"trace", t.name()}, {"scale", t.scale()}, {"bytes", *bytes},     {"delay_ms", *delay_ms},
                       {"at_s", *at},       {"arrival_s", arrival}, {"duration_s", dur}, {"goodput_mbps", mbps}};
      std::cout << j.dump(2) << "\n";
    } else {
      std::cout << std::fixed << std::setprecision(6) << *bytes << " bytes over " << t.name() << " from t=" << *at
                << " s: last byte arrives at " << arrival << " s (" << dur << " s, " << std::setprecision(3) << mbps
                << " Mbit/s)\n";
    }
    return 0;
  });
});
