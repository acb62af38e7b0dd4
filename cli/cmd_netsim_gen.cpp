// `kvstream netsim gen`: write a seeded synthetic trace of one link family (netsim/trace_gen.h).
#include <fstream>
#include <iostream>

#include "cli/command_registry.h"
#include "netsim/trace.h"
#include "netsim/trace_gen.h"

KVSTREAM_COMMAND("netsim gen", "Write a seeded synthetic link trace (fast, slow-start, steps, long-rtt, jitter, markov)",
                 [](CLI::App& sub) {
  auto o = std::make_shared<kvstream::netsim::GenOptions>();
  auto out = std::make_shared<std::string>();
  sub.add_option("--family", o->family, "fast | slow-start | steps | long-rtt | jitter | markov")->required();
  sub.add_option("--seed", o->seed, "Seed (the same seed gives the same trace)")->capture_default_str();
  sub.add_option("--kv-mbps", o->kv_mbps,
                 "The KV rate the family is relative to: the rate at which the q8 KV cache arrives as fast as "
                 "text recompute (5.5 = stories260K, 448 tokens, 2000 tok/s)")
      ->capture_default_str();
  sub.add_option("--duration-s", o->duration_s, "Trace length in seconds (it loops)")->capture_default_str();
  sub.add_option("-o,--output", *out, "Write the trace here (default: stdout)");
  return kvstream::cli::Action([o, out] {
    const std::string content = kvstream::netsim::generate_trace(*o);
    // Parse it back: what is written is a valid trace.
    const auto t = kvstream::netsim::Trace::parse(content, 1.0, o->family);
    if (out->empty()) {
      std::cout << content;
    } else {
      std::ofstream f(*out);
      if (!(f << content)) throw std::runtime_error("cannot write " + *out);
      std::cerr << "netsim gen: " << *out << " (" << o->family << ", mean " << t.mean_bps() / 1e6 << " Mbit/s, "
                << t.segments() << " segments)" << std::endl;
    }
    return 0;
  });
});
