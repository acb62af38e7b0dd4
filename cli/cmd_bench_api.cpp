// `kvstream bench api`: fetching through the public API into a paged fp16 layout vs today's
// receiver, side by side (JSON out). Logic: bench/api_bench.h.
#include <fstream>
#include <iostream>

#include "bench/api_bench.h"
#include "cli/command_registry.h"

KVSTREAM_COMMAND("bench api", "TTFT of a fetch through the public API into a paged fp16 layout vs the receiver, JSON out",
                 ([](CLI::App& sub) {
  auto o = std::make_shared<kvstream::bench::ApiBenchOptions>();
  auto out = std::make_shared<std::string>();
  sub.add_option("--dir", o->dir, "served directory (CONTEXT.kvs and its profile)")->required();
  sub.add_option("--context", o->context, "context id")->capture_default_str();
  sub.add_option("--policy", o->policy, "fetch policy (both sides)")->capture_default_str();
  sub.add_option("--slo-ms", o->slo_ms, "TTFT SLO")->capture_default_str();
  sub.add_option("--reps", o->reps, "fetches of each kind (alternating)")->capture_default_str();
  sub.add_option("--block-size", o->block_size, "tokens per block of the paged layout")->capture_default_str();
  sub.add_option("--trace", o->trace, "shape the link with this trace through a relay (default: plain loopback)");
  sub.add_option("--delay-ms", o->delay_ms, "one-way relay delay with --trace")->capture_default_str();
  sub.add_option("--profile-dir", o->profile_dir, "receivers' profile cache (default: memory only)");
  sub.add_option("-o,--output", *out, "write the JSON here (default: stdout)");
  return kvstream::cli::Action([o, out] {
    const auto j = kvstream::bench::run_api_bench(*o);
    if (out->empty()) {
      std::cout << j.dump(2) << std::endl;
    } else {
      std::ofstream(*out) << j.dump(2) << std::endl;
      std::cout << "bench api: TTFT api/receiver median " << j["summary"]["ttft_ratio_median"] << " -> " << *out << "\n";
    }
    return 0;
  });
}));
