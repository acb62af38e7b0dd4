// The reliability suite (scripts/bench_reliability.sh, `kvstream bench reliability`): a running
// sender under hostile load, under honest load, behind a faulty relay, and the cost of
// authentication and TLS. Each part returns its JSON with the figures and a "pass" verdict per
// criterion (docs/RESULTS.md, "Hardening (issue 13)"). Benchmark code: not part of the product
// libraries.
//
// Every honest fetch is verified bit-exact against a local decode of the plan it ran
// (verify.h). Honest fetches go through an in-process relay each (a constant-rate link per
// receiver), so that "the same per-receiver bandwidth" holds under load. The sender is a separate
// process (its pid is given): its RSS and CPU are read from /proc.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "codec/container.h"
#include "codec/profile.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "streamer/tls_config.h"

namespace kvstream::streamer::bench {

struct SenderRef {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  int pid = 0;                         // the sender process (RSS, CPU); 0 = not measured
  std::optional<TlsClientConfig> tls;  // connect with TLS
};
struct Tenant {
  std::string name;
  std::vector<uint8_t> key;  // empty: no authentication
};
// What is served, and what the suite checks fetches against: tenant T's contexts are
// ROOT/T/<id>.kvs (the same files for every tenant, see prepare_contexts).
struct Served {
  std::string root;
  std::vector<std::string> contexts;
  const model::Model* model = nullptr;
  std::shared_ptr<const codec::Profile> profile;
  std::vector<std::shared_ptr<const codec::ContainerReader>> containers;  // by context index
  static Served load(const std::string& root, const std::string& tenant, const model::Model* model);
};
struct Link {
  double mbps = 20;     // per receiver (one relay each)
  double delay_ms = 5;  // one way
};

struct HostileSuite {
  SenderRef sender;
  std::vector<Tenant> honest;      // receivers authenticate round robin
  Tenant hostile;                  // the never-reading connections' tenant
  int hostile_connections = 2000;  // hostile clients, each connected or reconnecting
  int required_open = 1000;        // hostile connections that must be open at once during the fetches
  int honest_receivers = 16;
  int rounds = 3;                  // unloaded and loaded rounds, alternating
  Link link;
  double prefill_rate = 2000;
  uint64_t rss_bound_bytes = 256ull << 20;
  double ttft_ratio_bound = 1.5;
};
struct HonestSuite {
  SenderRef sender;
  std::vector<Tenant> tenants;
  int receivers = 64;
  int single_reps = 3;  // single-receiver baseline runs per (context, policy)
  Link link;
  double prefill_rate = 2000;
  uint64_t rss_bound_bytes = 256ull << 20;
  double ttft_ratio_bound = 2.0;
};
struct FaultSuite {
  SenderRef sender;
  Tenant tenant;
  int cuts = 100, corruptions = 100, stalls = 20;
  uint64_t seed = 1;
  double stall_timeout_s = 1;
  double total_timeout_s = 30;
  Link link{200, 1};
  std::string policy = "fixed:q8";
  double prefill_rate = 0;
};
struct SecuritySuite {
  SenderRef insecure, auth, tls;  // the same files served three ways (tls: with auth)
  Tenant tenant;
  int ttft_reps = 30;
  uint64_t bytes_per_mode = 256ull << 20;
};

// The policies honest receivers cycle through (each fetch picks one by its index).
const std::vector<std::string>& honest_policies();

nlohmann::json run_hostile(const HostileSuite& s, const Served& served);
nlohmann::json run_honest(const HonestSuite& s, const Served& served);
nlohmann::json run_faults(const FaultSuite& s, const Served& served);
nlohmann::json run_security(const SecuritySuite& s, const Served& served);

// Writes `count` contexts of `tokens` tokens (cut from the evaluation range of `text`, prefilled by
// `model`, encoded with the profile's default ladder + baselines, 64-token chunks) to
// ROOT/contexts/ctx<i>.kvs, and links them and the profile into ROOT/T/ for every tenant.
void prepare_contexts(const std::string& root, const std::vector<std::string>& tenants, int count, int tokens,
                      const model::Model& model, const model::Tokenizer& tok, const std::string& text,
                      const std::string& profile_path);

// Raises this process's open-file limit to its hard limit (the suite holds thousands of sockets).
void raise_open_file_limit();

}  // namespace kvstream::streamer::bench
