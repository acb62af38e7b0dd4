// `kvstream send`: serve every DIR/ctx.kvs (with DIR/*.kvprofile) — per tenant DIR/<tenant>/ when
// authenticating with --keys — and with --store the entries of a KV store directory or of a Redis
// Cluster tier (redis://..., any number of stateless senders serve the same contexts; per tenant
// with --keys), by prefix key, over the kvstream protocol until SIGINT/SIGTERM (or --duration-s).
#include <csignal>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>

#include "cli/command_registry.h"
#include "cli/stop_signal.h"
#include "store/redis_source.h"
#include "store/store_source.h"
#include "streamer/auth.h"
#include "streamer/context_source.h"
#include "streamer/endpoint.h"
#include "streamer/sender.h"

namespace {
struct SendOpts {
  std::string listen, dir, store, store_policy = "lru", store_model, store_secret_file, keys;
  std::string tls_cert, tls_key, tls_client_ca;
  uint64_t store_mem_bytes = 64ull << 20, store_disk_bytes = 1ull << 30;
  kvstream::streamer::SenderOptions so;
  double duration_s = 0;
  int fault_corrupt_blob = -1;
  bool quiet = false, insecure = false;
};
}  // namespace

KVSTREAM_COMMAND("send", "Serve the KV caches (ctx.kvs) in a directory to receivers", [](CLI::App& sub) {
  using Opts = SendOpts;
  auto o = std::make_shared<Opts>();
  auto& so = o->so;
  sub.add_option("--listen", o->listen, "HOST:PORT to listen on (port 0 = any; the bound port is printed)")->required();
  sub.add_option("--dir", o->dir,
                 "directory with ctx.kvs containers and *.kvprofile profiles (with --keys: one subdirectory per tenant; "
                 "default: none, needed unless --store redis://)");
  sub.add_option("--keys", o->keys, "tenant keys file ('TENANT HEXSECRET' lines, mode 600; see `kvstream keygen`): "
                                    "authenticate every receiver (default: none)");
  sub.add_flag("--insecure", o->insecure, "serve without authentication: anyone who can connect fetches any context");
  sub.add_option("--tls-cert", o->tls_cert, "TLS: PEM certificate chain (with --tls-key; default: no TLS)");
  sub.add_option("--tls-key", o->tls_key, "TLS: PEM private key (default: none)");
  sub.add_option("--tls-client-ca", o->tls_client_ca, "TLS: require client certificates signed by this CA (PEM; default: none)");
  sub.add_option("--store", o->store,
                 "also serve this KV store's entries, by prefix key (hex): a store directory (with --keys, tenant T's are "
                 "in STORE/T), or a Redis Cluster redis://HOST:PORT[,HOST:PORT...][/TENANT][?read_ms=N&pool=N] (with "
                 "--keys, tenant T's namespace is T; else the URI's, default 'default'; default: none)");
  sub.add_option("--store-secret-file", o->store_secret_file,
                 "deployment secret of the store's keys (see `kvstream keygen --secret-file`; required with --store "
                 "unless --insecure; default: none)");
  sub.add_option("--store-mem-bytes", o->store_mem_bytes, "memory tier capacity of --store, per tenant (bytes)")
      ->transform(CLI::AsSizeValue(false));
  sub.add_option("--store-disk-bytes", o->store_disk_bytes, "disk tier capacity of --store, per tenant (bytes; not with redis://)")
      ->transform(CLI::AsSizeValue(false));
  sub.add_option("--store-policy", o->store_policy, "--store eviction: lru | fifo | scheduler (redis://: lru | fifo)")->capture_default_str();
  sub.add_option("--store-model", o->store_model, "--store entries' model (default: the one model of --dir's profiles)");
  sub.add_option("--max-connections", so.max_connections, "most serving (authenticated) connections")->capture_default_str();
  sub.add_option("--max-pending", so.max_pending, "most connections in their handshake (the oldest is dropped for a new one)")
      ->capture_default_str();
  sub.add_option("--max-tenant-connections", so.max_tenant_connections, "most serving connections per tenant")
      ->capture_default_str();
  sub.add_option("--handshake-timeout-s", so.handshake_timeout_s, "close a connection not authenticated and requesting by then")
      ->capture_default_str();
  sub.add_option("--idle-timeout-s", so.idle_timeout_s, "drop a receiver silent for this long")->capture_default_str();
  sub.add_option("--write-timeout-s", so.write_timeout_s, "drop a receiver that takes no byte for this long")
      ->capture_default_str();
  sub.add_option("--workers", so.workers, "worker threads for file loads, parsing and store reads")->capture_default_str();
  sub.add_option("--cache-bytes", so.cache_bytes, "cache of parsed contexts and profiles (bytes)")
      ->transform(CLI::AsSizeValue(false));
  sub.add_option("--memory-budget-bytes", so.memory_budget_bytes,
                 "frames waiting to be sent, all receivers together (bytes)")
      ->transform(CLI::AsSizeValue(false));
  sub.add_option("--tenant-budget-bytes", so.tenant_budget_bytes,
                 "one tenant's share of --memory-budget-bytes, with --keys (bytes; 0 = a quarter of it)")
      ->transform(CLI::AsSizeValue(false));
  sub.add_option("--max-queued-bytes", so.max_queued_bytes, "frames waiting to be sent, per receiver (bytes)")
      ->transform(CLI::AsSizeValue(false));
  sub.add_option("--duration-s", o->duration_s, "exit after this many seconds (0 = until SIGINT/SIGTERM)")->capture_default_str();
  sub.add_flag("--quiet", o->quiet, "no per-connection log");
  sub.add_option("--fault-corrupt-blob", o->fault_corrupt_blob,
                 "TESTING: corrupt the blob of this chunk whenever it is sent at a KV level (receivers fall back to text; -1 = none)");
  return kvstream::cli::Action([o] {
    namespace ks = kvstream::streamer;
    namespace kst = kvstream::store;
    auto& so = o->so;
    std::tie(so.host, so.port) = ks::parse_host_port(o->listen, "--listen");
    so.dir = o->dir;
    const bool redis = kst::is_redis_uri(o->store);
    if (o->dir.empty() && !redis) throw std::invalid_argument("--dir is required (unless --store is redis://...)");
    auto log_mu = std::make_shared<std::mutex>();
    auto log_line = [log_mu](const std::string& s) {
      std::lock_guard<std::mutex> lock(*log_mu);
      std::cerr << "send: " << s << std::endl;
    };
    if (!o->keys.empty() && o->insecure) throw std::invalid_argument("--keys and --insecure exclude each other");
    if (o->keys.empty() && !o->insecure)
      throw std::invalid_argument("give --keys (authenticate receivers) or --insecure (serve anyone)");
    if (!o->keys.empty()) so.keys = std::make_shared<const ks::Keyring>(ks::Keyring::load(o->keys));
    so.insecure = o->insecure;
    if (!o->tls_cert.empty() || !o->tls_key.empty()) so.tls = ks::TlsServerConfig{o->tls_cert, o->tls_key, o->tls_client_ca};
    if (!o->tls_client_ca.empty() && !so.tls) throw std::invalid_argument("--tls-client-ca needs --tls-cert and --tls-key");
    if (redis) {
      kst::RedisSourceOptions ro;
      ro.mem_bytes = o->store_mem_bytes;
      ro.policy = kst::parse_policy(o->store_policy);
      if (!o->quiet) ro.log = log_line;
      const auto base = kst::parse_redis_uri(o->store);
      auto make = [ro, base](const std::string& tenant, const std::string& tenant_dir) {
        auto opt = base;
        if (!tenant.empty()) opt.tenant = tenant;  // an authenticated tenant sees only its own namespace
        return std::make_shared<kst::RedisContextSource>(
            std::make_shared<kst::RedisTier>(opt), ro,
            tenant_dir.empty() || !std::filesystem::is_directory(tenant_dir) ? nullptr
                                                                             : std::make_shared<ks::ContextDir>(tenant_dir));
      };
      if (so.keys) {
        auto sources = std::make_shared<std::pair<std::mutex, std::map<std::string, std::shared_ptr<ks::ContextSource>>>>();
        so.tenant_source = [make, sources, dir = o->dir](const std::string& tenant) -> std::shared_ptr<ks::ContextSource> {
          std::lock_guard<std::mutex> lock(sources->first);  // one tier (connection pool) per tenant
          auto& src = sources->second[tenant];
          if (!src) src = make(tenant, dir.empty() ? "" : (std::filesystem::path(dir) / tenant).string());
          return src;
        };
      } else {
        so.source = make("", o->dir);
      }
    } else if (!o->store.empty()) {
      if (o->store_secret_file.empty() && !o->insecure)
        throw std::invalid_argument("--store needs --store-secret-file (the store keys' secret) unless --insecure");
      const ks::Secret secret = o->store_secret_file.empty() ? ks::Secret() : ks::load_secret_file(o->store_secret_file);
      kst::StoreConfig sc;
      sc.dir = o->store;
      sc.mem_bytes = o->store_mem_bytes;
      sc.disk_bytes = o->store_disk_bytes;
      sc.policy = kst::parse_policy(o->store_policy);
      sc.domain = o->store_model;
      if (so.keys) {
        so.tenant_source = [sc, secret, dir = o->dir](const std::string& tenant) -> std::shared_ptr<ks::ContextSource> {
          const auto tdir = std::filesystem::path(dir) / tenant;
          if (!std::filesystem::is_directory(tdir)) return nullptr;
          return std::make_shared<kst::StoreContextSource>(kst::tenant_store_config(sc, tenant, secret),
                                                           std::make_shared<ks::ContextDir>(tdir.string()));
        };
      } else {
        so.source = std::make_shared<kst::StoreContextSource>(kst::tenant_store_config(sc, "", secret),
                                                              std::make_shared<ks::ContextDir>(o->dir));
      }
    }
    so.faults.corrupt_blob_chunk = o->fault_corrupt_blob;
    if (!o->quiet) so.log = log_line;
    const kvstream::cli::StopSignal stop;  // before any thread starts
    ks::Sender sender(so);
    sender.start();
    std::cout << "send: serving " << (o->dir.empty() ? "" : o->dir + (o->store.empty() ? "" : " and "))
              << (o->store.empty() ? "" : "store " + o->store)
              << (so.keys ? " to " + std::to_string(so.keys->size()) + " tenants" : " without authentication")
              << (so.tls ? " over TLS" : "") << " on " << so.host << ":" << sender.port() << std::endl;
    stop.wait(o->duration_s);
    sender.stop();
    const auto st = sender.stats();
    std::cout << "send: " << st.connections << " connections, " << st.frames_sent << " frames, " << st.bytes_sent
              << " bytes, " << st.errors_sent << " errors" << std::endl;
    if (auto* rs = dynamic_cast<kvstream::store::RedisContextSource*>(so.source.get())) {
      const auto r = rs->stats();
      const auto c = rs->tier().cluster().stats();
      std::cout << "send: redis: " << r.contexts << " contexts, " << r.blobs << " blobs (" << r.mem_hits << " from memory, "
                << r.redis_reads << " read, " << r.text_served << " text, " << r.unservable
                << " unservable -> text); cluster: " << c.replica_reads << " replica reads, " << c.moved << " MOVED, "
                << c.ask << " ASK, " << c.refreshes << " slot-map refreshes, " << c.io_errors << " I/O errors, "
                << c.unavailable << " unavailable" << std::endl;
    }
    return 0;
  });
});
