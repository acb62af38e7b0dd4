// `kvstream bench stream`: simulate every policy on many traces with SLO = a fraction of q8's TTFT
// on each trace, and compare adaptive with the oracle and cachegen (JSON out).
#include <fstream>
#include <iostream>

#include "cli/command_registry.h"
#include "cli/progress.h"
#include "streamer/sim_inputs.h"
#include "streamer/stream_bench.h"

namespace {
struct BenchStreamOpts {
  std::string kvs, profile, out;
  std::vector<std::string> traces;
  std::vector<std::string> policies;
  double prefill_rate = 2000, delay_ms = 10, fraction = 1.0 / 3.0, scale = 1.0, prior_mbps = 1.0;
  double turnaround_ms = kvstream::streamer::kDefaultTurnaroundS * 1e3;
};
}  // namespace

KVSTREAM_COMMAND("bench stream", "Streaming policies over many traces (SLO = q8 TTFT / 3), JSON out", [](CLI::App& sub) {
  using Opts = BenchStreamOpts;
  auto o = std::make_shared<Opts>();
  sub.add_option("--kvs", o->kvs, "container (.kvs)")->required();
  sub.add_option("--profile", o->profile, "profile (default: the *.kvprofile beside --kvs)");
  sub.add_option("--trace", o->traces, "trace files (repeat or list)")->required();
  sub.add_option("--policy", o->policies, "policies to run (default: adaptive cachegen oracle q8 text)");
  sub.add_option("--prefill-rate", o->prefill_rate, "text recompute tokens/s")->capture_default_str();
  sub.add_option("--delay-ms", o->delay_ms, "one-way delay")->capture_default_str();
  sub.add_option("--turnaround-ms", o->turnaround_ms, "request at the sender -> answer on the link (sender + relay)")
      ->capture_default_str();
  sub.add_option("--slo-fraction", o->fraction, "SLO = this x q8's TTFT on each trace")->capture_default_str();
  sub.add_option("--scale", o->scale, "trace capacity multiplier")->capture_default_str();
  sub.add_option("--prior-mbps", o->prior_mbps, "controller prior")->capture_default_str();
  sub.add_option("-o,--output", o->out, "write the JSON here (default: stdout)");
  return kvstream::cli::Action([o] {
    namespace ks = kvstream::streamer;
    auto ctx = ks::load_context_for_sim(o->kvs, o->profile);
    ctx.inputs.prefill_rate = o->prefill_rate;
    ctx.inputs.first_token_s = o->prefill_rate > 0 ? 1.0 / o->prefill_rate : 0.0;
    ks::BenchOptions bo;
    bo.traces = o->traces;
    if (!o->policies.empty()) bo.policies = o->policies;
    bo.delay_s = o->delay_ms / 1e3;
    bo.turnaround_s = o->turnaround_ms / 1e3;
    bo.slo_fraction_of_q8 = o->fraction;
    bo.scale = o->scale;
    bo.prior_mbps = o->prior_mbps;
    kvstream::cli::Progress progress("bench stream", true);
    bo.progress = progress.fn();
    auto j = ks::run_stream_bench(ctx.inputs, bo);
    progress.finish();
    j["config"] = {{"kvs", o->kvs}, {"prefill_rate", o->prefill_rate}, {"delay_ms", o->delay_ms},
                   {"turnaround_ms", o->turnaround_ms},
                   {"slo_fraction_of_q8", o->fraction}, {"scale", o->scale}, {"prior_mbps", o->prior_mbps},
                   {"chunks", ctx.inputs.spec.chunks.size()}, {"tokens", ctx.inputs.spec.total_tokens()}};
    if (o->out.empty()) {
      std::cout << j.dump(2) << std::endl;
    } else {
      std::ofstream f(o->out);
      if (!(f << j.dump(2) << "\n")) throw std::runtime_error("cannot write " + o->out);
      std::cerr << "bench stream: wrote " << o->out << "\n" << j["summary"].dump(2) << std::endl;
    }
    return 0;
  });
});
