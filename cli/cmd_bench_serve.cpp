// `kvstream bench serve`: many concurrent clients fetch stored contexts chunk by chunk from one or
// more senders (e.g. several `kvstream send --store redis://...`), verify every byte against the
// original containers, and report chunk throughput and service latency (JSON). Logic:
// bench/serve_bench.h. Example:
//   kvstream bench serve --connect 127.0.0.1:9001,127.0.0.1:9002 --context KEY --verify KEY=ctx.kvs
//     --receivers 48 --duration-s 10 -o out/serve.json
#include <fstream>
#include <iostream>

#include "cli/command_registry.h"
#include "bench/serve_bench.h"
#include "streamer/endpoint.h"

namespace {
struct BenchServeOpts {
  std::string connect, out;
  std::vector<std::string> contexts, verify;
  kvstream::store::ServeBenchOptions b;
};
}  // namespace

KVSTREAM_COMMAND("bench serve", "Concurrent chunk fetches from senders: throughput, latency, wrong_kv (JSON)", [](CLI::App& sub) {
  using Opts = BenchServeOpts;
  auto o = std::make_shared<Opts>();
  sub.add_option("--connect", o->connect, "senders: HOST:PORT[,HOST:PORT...] (sessions go round robin)")->required();
  sub.add_option("--context", o->contexts, "context ids to fetch (repeat; sessions go round robin)")->required();
  sub.add_option("--verify", o->verify, "ID=FILE.kvs: check every chunk of ID against this container (repeat; default: none, nothing checked)");
  sub.add_option("--receivers", o->b.receivers, "concurrent clients")->capture_default_str();
  sub.add_option("--duration-s", o->b.duration_s, "start sessions for this long")->capture_default_str();
  sub.add_option("--sessions", o->b.sessions, "stop after this many sessions (0 = by duration)")->capture_default_str();
  sub.add_option("--level", o->b.level, "manifest level index fetched for every chunk (-1 = text)")->capture_default_str();
  sub.add_option("--window", o->b.window, "chunk requests outstanding per client")->capture_default_str();
  sub.add_option("--timeout-s", o->b.timeout_s, "a session silent this long fails")->capture_default_str();
  sub.add_option("-o,--output", o->out, "write the JSON here (default: stdout)");
  return kvstream::cli::Action([o] {
    namespace ks = kvstream::store;
    std::string rest = o->connect;
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      o->b.senders.push_back(kvstream::streamer::parse_host_port(rest.substr(0, comma), "--connect"));
      rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
    }
    o->b.contexts = o->contexts;
    for (const auto& v : o->verify) {
      const size_t eq = v.find('=');
      if (eq == std::string::npos) throw std::invalid_argument("--verify expects ID=FILE.kvs, got '" + v + "'");
      o->b.expected[v.substr(0, eq)] =
          std::make_shared<const kvstream::codec::ContainerReader>(kvstream::codec::ContainerReader::open(v.substr(eq + 1)));
    }
    const auto res = ks::run_serve_bench(o->b);
    auto j = res.to_json();
    j["config"] = {{"senders", o->b.senders.size()}, {"connect", o->connect}, {"contexts", o->contexts},
                   {"receivers", o->b.receivers}, {"duration_s", o->b.duration_s}, {"level", o->b.level},
                   {"window", o->b.window}};
    if (o->out.empty()) {
      std::cout << j.dump(2) << std::endl;
    } else {
      std::ofstream f(o->out);
      if (!(f << j.dump(2) << "\n")) throw std::runtime_error("cannot write " + o->out);
    }
    return res.sessions_failed == 0 && res.wrong_kv == 0 ? 0 : 1;
  });
});
