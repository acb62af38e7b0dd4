// `kvstream bench stream`: the streaming benchmark matrix (bench/stream_bench.h): link families
// x one-way delays x SLO fractions of q8's TTFT, every policy simulated, JSON out.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli/command_registry.h"
#include "cli/progress.h"
#include "streamer/sim_inputs.h"
#include "bench/stream_bench.h"

namespace {
struct BenchStreamOpts {
  std::string kvs, profile, out;
  std::vector<std::string> families, traces;
  std::vector<double> delays_ms = {5, 40, 100}, fractions = {0.2, 0.33, 0.5, 1.0};
  double prefill_rate = 2000, scale = 1.0, prior_mbps = 1.0;
  double turnaround_ms = kvstream::streamer::kDefaultTurnaroundS * 1e3;
  int jobs = 2, decode_repeats = 15;
  bool ablation = false, no_cases = false;
};

// "NAME=PATH[,PATH...]": a directory stands for every file in it (sorted by name).
kvstream::streamer::BenchFamily parse_family(const std::string& spec) {
  namespace fs = std::filesystem;
  const auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    throw std::invalid_argument("--family: expected NAME=PATH[,PATH...], got '" + spec + "'");
  kvstream::streamer::BenchFamily f;
  f.name = spec.substr(0, eq);
  std::string rest = spec.substr(eq + 1);
  for (size_t pos = 0; pos <= rest.size();) {
    const size_t comma = std::min(rest.find(',', pos), rest.size());
    const std::string path = rest.substr(pos, comma - pos);
    pos = comma + 1;
    if (path.empty()) continue;
    if (fs::is_directory(path)) {
      std::vector<std::string> files;
      for (const auto& e : fs::directory_iterator(path))
        if (e.is_regular_file()) files.push_back(e.path().string());
      std::sort(files.begin(), files.end());
      f.traces.insert(f.traces.end(), files.begin(), files.end());
    } else {
      f.traces.push_back(path);
    }
  }
  if (f.traces.empty()) throw std::invalid_argument("--family " + f.name + ": no traces");
  return f;
}
}  // namespace

KVSTREAM_COMMAND("bench stream", "Streaming matrix: families x delays x SLO fractions of q8's TTFT, every policy, JSON out",
                 [](CLI::App& sub) {
  using Opts = BenchStreamOpts;
  auto o = std::make_shared<Opts>();
  sub.add_option("--kvs", o->kvs, "container (.kvs)")->required();
  sub.add_option("--profile", o->profile, "profile (default: the *.kvprofile beside --kvs)");
  sub.add_option("--family", o->families, "a family of traces: NAME=PATH[,PATH...] (a directory: all its files); repeat (default: none)");
  sub.add_option("--trace", o->traces, "trace files of one family named 'traces' (repeat or list; default: none)");
  sub.add_option("--delays-ms", o->delays_ms, "one-way delays")->capture_default_str()->delimiter(',');
  sub.add_option("--slo-fractions", o->fractions, "SLO = each of these x q8's TTFT on each (trace, delay)")
      ->capture_default_str()->delimiter(',');
  sub.add_option("--prefill-rate", o->prefill_rate, "text recompute tokens/s")->capture_default_str();
  sub.add_option("--turnaround-ms", o->turnaround_ms, "request at the sender -> answer on the link (sender + relay)")
      ->capture_default_str();
  sub.add_option("--scale", o->scale, "trace capacity multiplier")->capture_default_str();
  sub.add_option("--prior-mbps", o->prior_mbps, "centre of the controller's belief before any measurement")
      ->capture_default_str();
  sub.add_option("--jobs", o->jobs, "threads")->capture_default_str();
  sub.add_option("--decode-repeats", o->decode_repeats, "decode each (chunk, level) this many times (its minimum; per level the mean per token)")
      ->capture_default_str();
  sub.add_flag("--ablation", o->ablation, "also run adaptive with each first-estimate source off (and prior only)");
  sub.add_flag("--no-cases", o->no_cases, "leave the per-case records out of the JSON");
  sub.add_option("-o,--output", o->out, "write the JSON here (default: stdout)");
  return kvstream::cli::Action([o] {
    namespace ks = kvstream::streamer;
    ks::BenchOptions bo;
    for (const auto& f : o->families) bo.families.push_back(parse_family(f));
    if (!o->traces.empty()) bo.families.push_back({"traces", o->traces});
    if (bo.families.empty()) throw std::invalid_argument("bench stream: give --family or --trace");
    auto ctx = ks::load_context_for_sim(o->kvs, o->profile, o->decode_repeats);
    ctx.inputs.prefill_rate = o->prefill_rate;
    ctx.inputs.first_token_s = o->prefill_rate > 0 ? 1.0 / o->prefill_rate : 0.0;
    bo.delays_s.clear();
    for (double d : o->delays_ms) bo.delays_s.push_back(d / 1e3);
    bo.slo_fractions = o->fractions;
    bo.turnaround_s = o->turnaround_ms / 1e3;
    bo.scale = o->scale;
    bo.prior_mbps = o->prior_mbps;
    bo.jobs = o->jobs;
    bo.cases = !o->no_cases;
    if (o->ablation) bo.variants = ks::ablation_variants();
    kvstream::cli::Progress progress("bench stream", true);
    bo.progress = progress.fn();
    auto j = ks::run_stream_bench(ctx.inputs, bo);
    progress.finish();
    double q8_bytes = 0;
    const int q8 = ctx.inputs.spec.find_level("q8");
    for (const auto& c : ctx.inputs.spec.chunks) q8_bytes += q8 >= 0 ? double(c.level_bytes[size_t(q8)]) : 0.0;
    j["config"]["kvs"] = o->kvs;
    j["config"]["prefill_rate"] = o->prefill_rate;
    j["config"]["chunks"] = ctx.inputs.spec.chunks.size();
    j["config"]["tokens"] = ctx.inputs.spec.total_tokens();
    // the rate at which q8's KV arrives as fast as text recompute (netsim gen --kv-mbps)
    j["config"]["kv_mbps"] = o->prefill_rate > 0 ? q8_bytes * 8 / (double(ctx.inputs.spec.total_tokens()) / o->prefill_rate) / 1e6 : 0.0;
    if (o->out.empty()) {
      std::cout << j.dump(1) << std::endl;
    } else {
      std::ofstream f(o->out);
      if (!(f << j.dump(1) << "\n")) throw std::runtime_error("cannot write " + o->out);
      auto s = j["summary"];
      s.erase("missed_vs_oracle");
      s.erase("missed_vs_fixed");
      std::cerr << "bench stream: wrote " << o->out << "\n" << s.dump(2) << std::endl;
    }
    return 0;
  });
});
