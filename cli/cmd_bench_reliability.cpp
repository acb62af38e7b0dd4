// `kvstream bench reliability`: the reliability suite's parts against a running `kvstream send`
// (scripts/bench_reliability.sh runs them all and merges the JSON): prepare (the served contexts),
// hostile, honest, faults, security. Logic: bench/reliability.h.
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/command_registry.h"
#include "model/kv_quality.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "streamer/auth.h"
#include "bench/reliability.h"
#include "streamer/endpoint.h"

namespace {
struct BenchRelOpts {
  std::string part, dir, out, keys, tenants = "honest", hostile_tenant = "mallory", tls_ca;
  std::string connect, insecure_connect, auth_connect, tls_connect;
  int pid = 0, insecure_pid = 0, auth_pid = 0, tls_pid = 0;
  std::string model, tokenizer, text, profile;
  int contexts = 8, tokens = 448;
  kvstream::streamer::bench::HostileSuite hostile;
  kvstream::streamer::bench::HonestSuite honest;
  kvstream::streamer::bench::FaultSuite faults;
  kvstream::streamer::bench::SecuritySuite security;
  double mbps = 20, delay_ms = 5;
  uint64_t rss_bound = 256ull << 20;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> v;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, ',');)
    if (!x.empty()) v.push_back(x);
  return v;
}
}  // namespace

KVSTREAM_COMMAND("bench reliability", "Reliability suite parts against a running sender (JSON out)", ([](CLI::App& sub) {
  auto o = std::make_shared<BenchRelOpts>();
  sub.add_option("--part", o->part, "prepare | hostile | honest | faults | security")->required();
  sub.add_option("--dir", o->dir, "served root: tenant T's contexts are DIR/T/*.kvs")->required();
  sub.add_option("-o,--output", o->out, "write the JSON here (default: stdout)");
  sub.add_option("--keys", o->keys, "keys file with the tenants' secrets (default: none)");
  sub.add_option("--tenants", o->tenants, "honest tenants, comma-separated")->capture_default_str();
  sub.add_option("--hostile-tenant", o->hostile_tenant, "tenant of the never-reading hostile connections")->capture_default_str();
  sub.add_option("--connect", o->connect, "HOST:PORT of the sender (hostile, honest, faults; default: none)");
  sub.add_option("--sender-pid", o->pid, "the sender's pid (RSS, CPU; 0 = not measured)")->capture_default_str();
  sub.add_option("--tls-ca", o->tls_ca, "connect with TLS, verifying against this CA (hostile/honest/faults; default: none)");
  sub.add_option("--insecure-connect", o->insecure_connect, "security: HOST:PORT of an --insecure sender (default: none)");
  sub.add_option("--auth-connect", o->auth_connect, "security: HOST:PORT of an authenticating sender (default: none)");
  sub.add_option("--tls-connect", o->tls_connect, "security: HOST:PORT of an authenticating TLS sender (with --tls-ca; default: none)");
  sub.add_option("--insecure-pid", o->insecure_pid, "security: pid of the --insecure sender")->capture_default_str();
  sub.add_option("--auth-pid", o->auth_pid, "security: pid of the authenticating sender")->capture_default_str();
  sub.add_option("--tls-pid", o->tls_pid, "security: pid of the TLS sender")->capture_default_str();
  sub.add_option("--model", o->model, "llama2.c checkpoint (prepare; recompute and verification of text chunks; default: none)");
  sub.add_option("--tokenizer", o->tokenizer, "prepare: tokenizer (default: none)");
  sub.add_option("--text-file", o->text, "prepare: text to cut contexts from (its evaluation range; default: none)");
  sub.add_option("--profile", o->profile, "prepare: codec profile to encode with (default: none)");
  sub.add_option("--contexts", o->contexts, "prepare: number of contexts")->capture_default_str();
  sub.add_option("--tokens", o->tokens, "prepare: tokens per context")->capture_default_str();
  sub.add_option("--mbps", o->mbps, "per-receiver link (one relay each), Mbit/s")->capture_default_str();
  sub.add_option("--delay-ms", o->delay_ms, "per-receiver link one-way delay")->capture_default_str();
  sub.add_option("--rss-bound-bytes", o->rss_bound, "sender RSS bound checked (bytes)")->transform(CLI::AsSizeValue(false));
  sub.add_option("--hostile-connections", o->hostile.hostile_connections, "hostile: clients, each connected or reconnecting")
      ->capture_default_str();
  sub.add_option("--required-open", o->hostile.required_open, "hostile: connections that must be open at once")
      ->capture_default_str();
  sub.add_option("--honest-receivers", o->hostile.honest_receivers, "hostile: honest receivers")->capture_default_str();
  sub.add_option("--rounds", o->hostile.rounds, "hostile: unloaded/loaded round pairs")->capture_default_str();
  sub.add_option("--receivers", o->honest.receivers, "honest: concurrent receivers")->capture_default_str();
  sub.add_option("--single-reps", o->honest.single_reps, "honest: single-receiver runs per (context, policy)")->capture_default_str();
  sub.add_option("--cuts", o->faults.cuts, "faults: runs with a cut")->capture_default_str();
  sub.add_option("--corruptions", o->faults.corruptions, "faults: runs with a corrupted byte")->capture_default_str();
  sub.add_option("--stalls", o->faults.stalls, "faults: runs with a stall")->capture_default_str();
  sub.add_option("--seed", o->faults.seed, "faults: seed of the fault offsets")->capture_default_str();
  sub.add_option("--stall-timeout-s", o->faults.stall_timeout_s, "faults: the receivers' stall timeout")->capture_default_str();
  sub.add_option("--ttft-reps", o->security.ttft_reps, "security: TTFT runs per mode")->capture_default_str();
  sub.add_option("--stream-bytes", o->security.bytes_per_mode, "security: bytes streamed per mode (CPU per GB)")
      ->transform(CLI::AsSizeValue(false));
  return kvstream::cli::Action([o] {
    namespace ks = kvstream::streamer;
    namespace kb = kvstream::streamer::bench;
    kb::raise_open_file_limit();
    std::optional<kvstream::model::Model> model;
    if (!o->model.empty()) model.emplace(kvstream::model::Model::load(o->model));
    if (o->part == "prepare") {
      if (!model || o->tokenizer.empty() || o->text.empty() || o->profile.empty())
        throw std::invalid_argument("--part prepare needs --model, --tokenizer, --text-file and --profile");
      auto tenants = split(o->tenants);
      tenants.push_back(o->hostile_tenant);
      kb::prepare_contexts(o->dir, tenants, o->contexts, o->tokens, *model,
                           kvstream::model::Tokenizer::load(o->tokenizer), kvstream::model::read_text_file(o->text), o->profile);
      std::cout << "bench reliability: prepared " << o->contexts << " contexts for " << tenants.size() << " tenants in "
                << o->dir << std::endl;
      return 0;
    }
    std::optional<ks::Keyring> keys;
    if (!o->keys.empty()) keys.emplace(ks::Keyring::load(o->keys));
    auto tenant = [&](const std::string& name) {
      if (!keys) return kb::Tenant{};
      const auto* k = keys->find(name);
      if (!k) throw std::invalid_argument(o->keys + " has no key for tenant '" + name + "'");
      return kb::Tenant{name, *k};
    };
    std::vector<kb::Tenant> honest;
    for (const auto& t : split(o->tenants)) honest.push_back(tenant(t));
    if (honest.empty()) throw std::invalid_argument("--tenants names no tenant");
    const auto served = kb::Served::load(o->dir, split(o->tenants).front(), model ? &*model : nullptr);
    auto sender = [&](const std::string& hp, int pid, bool tls) {
      kb::SenderRef s;
      if (hp.empty()) throw std::invalid_argument("--part " + o->part + " needs the sender's address");
      std::tie(s.host, s.port) = ks::parse_host_port(hp, "--connect");
      s.pid = pid;
      if (tls) s.tls = ks::TlsClientConfig{o->tls_ca, "", "", ""};
      return s;
    };
    const kb::Link link{o->mbps, o->delay_ms};
    nlohmann::json j;
    if (o->part == "hostile") {
      auto& s = o->hostile;
      s.sender = sender(o->connect, o->pid, !o->tls_ca.empty());
      s.honest = honest;
      s.hostile = tenant(o->hostile_tenant);
      s.link = link;
      s.rss_bound_bytes = o->rss_bound;
      j = kb::run_hostile(s, served);
    } else if (o->part == "honest") {
      auto& s = o->honest;
      s.sender = sender(o->connect, o->pid, !o->tls_ca.empty());
      s.tenants = honest;
      s.link = link;
      s.rss_bound_bytes = o->rss_bound;
      j = kb::run_honest(s, served);
    } else if (o->part == "faults") {
      auto& s = o->faults;
      s.sender = sender(o->connect, o->pid, !o->tls_ca.empty());
      s.tenant = honest.front();
      j = kb::run_faults(s, served);
    } else if (o->part == "security") {
      auto& s = o->security;
      s.insecure = sender(o->insecure_connect, o->insecure_pid, false);
      s.auth = sender(o->auth_connect, o->auth_pid, false);
      s.tls = sender(o->tls_connect, o->tls_pid, true);
      s.tenant = honest.front();
      j = kb::run_security(s, served);
    } else {
      throw std::invalid_argument("unknown --part '" + o->part + "'");
    }
    j["part"] = o->part;
    if (o->out.empty()) {
      std::cout << j.dump(2) << std::endl;
    } else {
      std::ofstream f(o->out);
      if (!(f << j.dump(2) << "\n")) throw std::runtime_error("cannot write " + o->out);
    }
    return 0;
  });
}));
