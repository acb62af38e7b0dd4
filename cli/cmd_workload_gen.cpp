// `kvstream workload gen`: writes a ShareGPT-like multi-turn workload (Poisson session arrivals,
// ~5.75 turns per session, TinyStories text) for `kvstream replay`. Logic: bench/workload.h.
// Example: kvstream workload gen --sessions 200 --seed 1 -o out/workload.json
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli/command_registry.h"
#include "bench/workload.h"

KVSTREAM_COMMAND("workload gen", "Generate a multi-turn conversation workload for kvstream replay", ([](CLI::App& sub) {
  struct Opts {
    kvstream::store::WorkloadOptions w;
    std::string text = "data/text/tinystories_val.txt", out;
  };
  auto o = std::make_shared<Opts>();
  sub.add_option("--sessions", o->w.sessions, "number of sessions")->required();
  sub.add_option("--seed", o->w.seed, "random seed")->required();
  sub.add_option("-o,--output", o->out, "workload JSON to write")->required();
  sub.add_option("--text-file", o->text, "text the turns are cut from (TinyStories)");
  sub.add_option("--rate", o->w.sessions_per_s, "session arrivals per second (Poisson)");
  sub.add_option("--mean-turns", o->w.mean_turns, "mean turns per session (ShareGPT: 5.75)");
  sub.add_option("--max-turns", o->w.max_turns, "cap on turns per session");
  sub.add_option("--turns-dist", o->w.turns_dist, "turns per session: geometric | lognormal (heavy-tailed, same mean)")
      ->check(CLI::IsMember({"geometric", "lognormal"}));
  sub.add_option("--turns-sigma", o->w.turns_sigma, "lognormal turns: sigma of ln(turns)");
  sub.add_option("--think-s", o->w.think_s_mean, "mean seconds between a session's turns");
  sub.add_option("--think-dist", o->w.think_dist, "think time distribution: exponential | lognormal (same mean)")
      ->check(CLI::IsMember({"exponential", "lognormal"}));
  sub.add_option("--think-sigma", o->w.think_sigma, "lognormal think time: sigma of ln(seconds)");
  sub.add_option("--text-from", o->w.text_begin_frac, "use text from this fraction of the file on");
  return kvstream::cli::Action([o] {
    std::ifstream f(o->text, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open text file " + o->text);
    std::stringstream ss;
    ss << f.rdbuf();
    const auto w = kvstream::store::generate_workload(o->w, ss.str());
    kvstream::store::save_workload(w, o->out);
    std::cout << "wrote " << o->out << ": " << w.sessions.size() << " sessions, " << w.num_turns() << " turns ("
              << double(w.num_turns()) / w.sessions.size() << " per session), last arrival at "
              << w.sessions.back().arrival_s << " s\n";
    return 0;
  });
}));
