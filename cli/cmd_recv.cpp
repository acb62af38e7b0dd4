// `kvstream recv`: fetch one context's KV cache from a sender within a TTFT SLO, print live
// per-chunk progress and a summary (or --json), optionally write the cache and measure quality.
#include <cstdio>
#include <iostream>
#include <optional>

#include "cli/command_registry.h"
#include "codec/safetensors.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "store/redis_tier.h"
#include "store/save_back.h"
#include "store/store_source.h"
#include "streamer/auth.h"
#include "streamer/endpoint.h"
#include "streamer/receiver.h"

namespace {
struct RecvOpts {
  std::string connect, context, policy = "adaptive", model, tokenizer, out, reference;
  std::string profile_dir = "out/profile-cache", save_back, link_memory;
  std::string tenant, keys, tls_ca, tls_server_name, tls_cert, tls_key, store_secret_file;
  uint64_t memory_budget_bytes = 512ull << 20;
  uint64_t save_back_disk_bytes = 1ull << 30;
  double slo_ms = 0, prefill_rate = 0, prior_mbps = 1.0, stall_timeout_s = 5, timeout_s = 120;
  int query_token = 1, continuation = 32;
  bool json = false;
};
}  // namespace

KVSTREAM_COMMAND("recv", "Fetch a context's KV cache from a sender within a TTFT SLO", [](CLI::App& sub) {
  using Opts = RecvOpts;
  auto o = std::make_shared<Opts>();
  sub.add_option("--connect", o->connect, "HOST:PORT of the sender (or of a relay in front of it)")->required();
  sub.add_option("--context", o->context, "context id (the sender serves DIR/<id>.kvs)")->required();
  sub.add_option("--slo-ms", o->slo_ms, "TTFT SLO in milliseconds")->required();
  sub.add_option("--policy", o->policy, "adaptive | fixed:LEVEL | q8 | text | cachegen | plan:L0,L1,...")->capture_default_str();
  sub.add_option("--prefill-rate", o->prefill_rate, "emulate a model that prefills this many tokens/s (0 = real compute time)");
  sub.add_option("--model", o->model, "llama2.c checkpoint: recomputes text chunks, generates the first token (default: none, KV levels only)");
  sub.add_option("--tokenizer", o->tokenizer, "llama2.c tokenizer: prints the first token (default: none)");
  sub.add_option("-o,--output", o->out, "write the assembled KV cache here, safetensors (default: none)");
  sub.add_flag("--json", o->json, "print the result as JSON (progress goes to stderr)");
  sub.add_option("--reference", o->reference, "original KV cache (safetensors): measure quality with the model (default: none)");
  sub.add_option("--save-back", o->save_back,
                 "after the fetch (off the TTFT path), store the assembled KV cache in this store directory, or in a "
                 "Redis Cluster tier redis://HOST:PORT[,...][/TENANT][?layout=chunk|context&wait=N] (every level + "
                 "text, durable when the command returns; `kvstream send --store DIR|redis://...` serves it under the "
                 "printed key; default: none)");
  sub.add_option("--save-back-disk-bytes", o->save_back_disk_bytes, "disk tier capacity of --save-back (bytes)")
      ->transform(CLI::AsSizeValue(false));
  sub.add_option("--profile-dir", o->profile_dir, "cache of codec profiles by hash")->capture_default_str();
  sub.add_option("--tenant", o->tenant, "authenticate as this tenant (with --keys; default: no authentication)");
  sub.add_option("--keys", o->keys, "keys file holding the tenant's secret ('TENANT HEXSECRET' lines, mode 600; default: none)");
  sub.add_option("--tls-ca", o->tls_ca, "TLS: verify the sender's certificate against this CA (PEM; default: no TLS)");
  sub.add_option("--tls-server-name", o->tls_server_name, "TLS: name the sender's certificate must carry (default: the --connect host)");
  sub.add_option("--tls-cert", o->tls_cert, "TLS: client certificate (PEM) for a sender that requires one (default: none)");
  sub.add_option("--tls-key", o->tls_key, "TLS: the client certificate's private key (PEM; default: none)");
  sub.add_option("--memory-budget-bytes", o->memory_budget_bytes,
                 "refuse a context whose KV cache, profile and frames need more (bytes)")
      ->transform(CLI::AsSizeValue(false));
  sub.add_option("--store-secret-file", o->store_secret_file,
                 "--save-back: the store keys' deployment secret (required with --tenant; entries go to DIR/TENANT, or to a Redis tier's namespace TENANT; default: none)");
  sub.add_option("--link-memory", o->link_memory,
                 "JSON file of each sender's last link estimate: the first estimate starts from it, the fetch updates it "
                 "(default: none)");
  sub.add_option("--prior-mbps", o->prior_mbps, "throughput assumed before the first measurement")->capture_default_str();
  sub.add_option("--stall-timeout-s", o->stall_timeout_s, "fail when the sender sends nothing for this long")->capture_default_str();
  sub.add_option("--timeout-s", o->timeout_s, "fail when the whole fetch takes longer")->capture_default_str();
  sub.add_option("--query-token", o->query_token, "token fed after the context to generate the first token")->capture_default_str();
  sub.add_option("--continuation", o->continuation, "tokens scored for --reference quality")->capture_default_str();
  return kvstream::cli::Action([o] {
    namespace ks = kvstream::streamer;
    std::optional<kvstream::model::Model> model;
    if (!o->model.empty()) model.emplace(kvstream::model::Model::load(o->model));
    if (!o->reference.empty() && !model) throw std::invalid_argument("--reference needs --model to score with");
    ks::ReceiverOptions ro;
    std::tie(ro.host, ro.port) = ks::parse_host_port(o->connect, "--connect");
    ro.context = o->context;
    ro.slo_s = o->slo_ms / 1e3;
    ro.policy = ks::parse_policy(o->policy);
    if (ro.policy.kind == ks::PolicyKind::kOracle) throw std::invalid_argument("policy oracle exists only in simulate");
    ro.prefill_rate = o->prefill_rate;
    ro.model = model ? &*model : nullptr;
    ro.profile_dir = o->profile_dir;
    ro.link_memory = o->link_memory;
    ro.query_token = o->query_token;
    ro.stall_timeout_s = o->stall_timeout_s;
    ro.total_timeout_s = o->timeout_s;
    ro.controller.prior_mbps = o->prior_mbps;
    ro.memory_budget_bytes = o->memory_budget_bytes;
    if (o->tenant.empty() != o->keys.empty()) throw std::invalid_argument("--tenant and --keys go together");
    if (!o->tenant.empty()) {
      ro.tenant = o->tenant;
      ro.key = ks::tenant_key(o->keys, o->tenant);
    }
    if (!o->tls_ca.empty()) ro.tls = ks::TlsClientConfig{o->tls_ca, o->tls_server_name, o->tls_cert, o->tls_key};
    else if (!o->tls_cert.empty() || !o->tls_server_name.empty()) throw std::invalid_argument("TLS options need --tls-ca");
    if (!o->save_back.empty() && !o->tenant.empty() && o->store_secret_file.empty())
      throw std::invalid_argument("--save-back with --tenant needs --store-secret-file");
    std::ostream& prog = o->json ? std::cerr : std::cout;
    ro.on_chunk = [&prog](const ks::ChunkRecord& c) {
      char line[256];
      const bool recompute = c.level == "text" || !c.fallback.empty();
      std::snprintf(line, sizeof line, "  chunk %3zu  %-12s %8llu B  arrived %8.1f..%8.1f ms  %7.2f Mbit/s  %s %6.2f ms  ready %8.1f ms%s\n",
                    c.index, c.level.c_str(), static_cast<unsigned long long>(c.bytes), c.start_ms, c.end_ms,
                    c.throughput_mbps, recompute ? "recompute" : "decode   ", c.decode_ms, c.ready_ms,
                    c.fallback.empty() ? "" : "  (fell back to text)");
      prog << line << std::flush;
    };
    ro.on_warning = [](const std::string& w) { std::cerr << "recv: " << w << std::endl; };
    auto out = ks::receive(ro);
    auto& r = out.result;
    if (!o->reference.empty()) {
      const auto ref = kvstream::read_safetensors(o->reference);
      ks::measure_quality(*model, ref, out.kv, o->query_token, o->continuation, r.greedy_agreement, r.ppl_delta_pct);
      r.quality_source = "measured";
    }
    if (!o->out.empty()) kvstream::write_safetensors(o->out, out.kv);
    std::optional<kvstream::store::SaveBackResult> saved;
    if (kvstream::store::is_redis_uri(o->save_back)) {
      const auto secret = o->store_secret_file.empty() ? ks::Secret() : ks::load_secret_file(o->store_secret_file);
      kvstream::store::RedisTier tier(
          kvstream::store::tenant_redis_options(kvstream::store::parse_redis_uri(o->save_back), o->tenant, secret));
      saved = kvstream::store::save_back_redis(out.kv, *out.profile, tier);
    } else if (!o->save_back.empty()) {
      kvstream::store::SaveBackOptions sb;
      kvstream::store::StoreConfig sc;
      sc.dir = o->save_back;
      const auto secret = o->store_secret_file.empty() ? ks::Secret() : ks::load_secret_file(o->store_secret_file);
      sc = kvstream::store::tenant_store_config(sc, o->tenant, secret);
      sb.dir = sc.dir;
      sb.secret = sc.secret;
      sb.disk_bytes = o->save_back_disk_bytes;
      saved = kvstream::store::save_back(out.kv, *out.profile, sb);
    }
    if (o->json) {
      auto j = r.to_json();
      if (saved)
        j["save_back"] = {{"key", saved->key.hex()}, {"tokens", saved->tokens}, {"stored_bytes", saved->stored_bytes},
                          {"ms", saved->seconds * 1e3}};
      std::cout << j.dump(2) << std::endl;
    } else {
      std::string tok;
      if (!o->tokenizer.empty() && r.first_token >= 0) {
        const auto t = kvstream::model::Tokenizer::load(o->tokenizer);
        tok = " '" + t.decode(o->query_token, r.first_token) + "'";
      }
      std::printf("context %s policy %s: TTFT %.1f ms (SLO %.0f ms, %s), last byte %.1f ms, %llu bytes, rtt %.1f ms%s\n",
                  r.context.c_str(), r.policy.c_str(), r.ttft_ms, r.slo_ms, r.slo_met ? "met" : "MISSED",
                  r.last_byte_ms, static_cast<unsigned long long>(r.bytes), out.rtt_s * 1e3,
                  out.profile_fetched ? ", profile fetched" : "");
      std::printf("quality (%s): top-1 agreement %.4f, ppl delta %+.2f%%; plan %s\n", r.quality_source.c_str(),
                  r.greedy_agreement, r.ppl_delta_pct, r.plan.c_str());
      for (const auto& c : r.chunks)
        if (!c.fallback.empty())
          std::printf("chunk %zu fell back to %s (%s)\n", c.index, c.fallback.c_str(), c.fallback_reason.c_str());
      if (r.first_token >= 0) std::printf("first token %d%s\n", r.first_token, tok.c_str());
      if (saved)
        std::printf("saved back to %s as %s (%zu tokens, %llu B, %.1f ms after the fetch)\n", o->save_back.c_str(),
                    saved->key.hex().c_str(), saved->tokens, static_cast<unsigned long long>(saved->stored_bytes),
                    saved->seconds * 1e3);
    }
    return 0;
  });
});
