// `kvstream simulate`: one fetch of a real container over a trace in virtual time, with the same
// controller as `kvstream recv` (and the oracle, which only exists here).
#include <cstdio>
#include <iostream>

#include "cli/command_registry.h"
#include "netsim/trace.h"
#include "streamer/sim_inputs.h"
#include "streamer/stream_sim.h"

namespace {
struct SimulateOpts {
  std::string kvs, trace, policy = "adaptive", profile;
  double slo_ms = 0, prefill_rate = 0, delay_ms = 10, scale = 1.0, prior_mbps = 1.0, recompute_ms_per_token = 0.2;
  double turnaround_ms = kvstream::streamer::kDefaultTurnaroundS * 1e3;
  std::string pacing_of;
  bool json = false, fetch_profile = false;
};
}  // namespace

KVSTREAM_COMMAND("simulate", "Simulate fetching a container over a bandwidth trace with a policy", [](CLI::App& sub) {
  using Opts = SimulateOpts;
  auto o = std::make_shared<Opts>();
  sub.add_option("--kvs", o->kvs, "container (.kvs); its profile is looked up beside it")->required();
  sub.add_option("--trace", o->trace, "Mahimahi or cooked trace file, or const:<rate>")->required();
  sub.add_option("--slo-ms", o->slo_ms, "TTFT SLO in milliseconds")->required();
  sub.add_option("--policy", o->policy, "adaptive | fixed:LEVEL | q8 | text | cachegen | oracle | plan:L0,L1,...")->capture_default_str();
  sub.add_option("--prefill-rate", o->prefill_rate, "text recompute speed in tokens/s (0 = --recompute-ms-per-token)");
  sub.add_option("--recompute-ms-per-token", o->recompute_ms_per_token, "recompute cost without --prefill-rate")->capture_default_str();
  sub.add_option("--delay-ms", o->delay_ms, "one-way propagation delay")->capture_default_str();
  sub.add_option("--turnaround-ms", o->turnaround_ms, "request at the sender -> answer on the link (sender + relay)")
      ->capture_default_str();
  sub.add_option("--scale", o->scale, "trace capacity multiplier")->capture_default_str();
  sub.add_option("--prior-mbps", o->prior_mbps, "throughput assumed before the first measurement")->capture_default_str();
  sub.add_option("--profile", o->profile, "profile file (default: the *.kvprofile beside --kvs with the right hash)");
  sub.add_option("--pacing-of", o->pacing_of,
                 "with --policy plan:...: request pacing of the policy that chose the plan: adaptive (default: none, paced like a fixed policy)")
      ->check(CLI::IsMember({"adaptive"}));
  sub.add_flag("--fetch-profile", o->fetch_profile, "the receiver does not have the profile yet");
  sub.add_flag("--json", o->json, "print the result as JSON");
  return kvstream::cli::Action([o] {
    namespace ks = kvstream::streamer;
    auto ctx = ks::load_context_for_sim(o->kvs, o->profile);
    ctx.inputs.prefill_rate = o->prefill_rate;
    ctx.inputs.recompute_s_per_token = o->recompute_ms_per_token / 1e3;
    ctx.inputs.first_token_s = o->prefill_rate > 0 ? 1.0 / o->prefill_rate : 0.0;
    ctx.inputs.fetch_profile = o->fetch_profile;
    const auto trace = kvstream::netsim::Trace::load(o->trace, o->scale);
    ks::SimOptions so;
    so.delay_s = o->delay_ms / 1e3;
    so.turnaround_s = o->turnaround_ms / 1e3;
    so.slo_s = o->slo_ms / 1e3;
    so.policy = ks::parse_policy(o->policy);
    if (!o->pacing_of.empty()) {
      if (so.policy.kind != ks::PolicyKind::kPlan) throw std::invalid_argument("--pacing-of needs --policy plan:...");
      so.policy.adaptive_pacing = true;
    }
    so.controller.prior_mbps = o->prior_mbps;
    const auto r = ks::simulate_stream(ctx.inputs, trace, so);
    if (o->json) {
      std::cout << r.to_json().dump(2) << std::endl;
      return 0;
    }
    std::printf("simulate %s over %s (mean %.2f Mbit/s, one-way delay %.0f ms), policy %s\n", r.context.c_str(),
                trace.name().c_str(), trace.mean_bps() / 1e6, o->delay_ms, r.policy.c_str());
    for (const auto& c : r.chunks)
      std::printf("  chunk %3zu  %-12s %8llu B  arrived %8.1f..%8.1f ms  %7.2f Mbit/s  %s %6.2f ms  ready %8.1f ms\n",
                  c.index, c.level.c_str(), static_cast<unsigned long long>(c.bytes), c.start_ms, c.end_ms,
                  c.throughput_mbps, c.level == "text" ? "recompute" : "decode   ", c.decode_ms, c.ready_ms);
    std::printf("TTFT %.1f ms (SLO %.0f ms, %s), last byte %.1f ms, %llu bytes\n", r.ttft_ms, r.slo_ms,
                r.slo_met ? "met" : "MISSED", r.last_byte_ms, static_cast<unsigned long long>(r.bytes));
    std::printf("quality (ladder): top-1 agreement %.4f, ppl delta %+.2f%%; plan %s\n", r.greedy_agreement,
                r.ppl_delta_pct, r.plan.c_str());
    return 0;
  });
});
