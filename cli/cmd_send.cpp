// `kvstream send`: serve every DIR/ctx.kvs (with DIR/*.kvprofile), and with --store the entries of
// a KV store directory or of a Redis Cluster tier (redis://..., any number of stateless senders
// serve the same contexts), by prefix key, over the kvstream protocol until SIGINT/SIGTERM (or
// --duration-s).
#include <csignal>
#include <iostream>
#include <mutex>

#include "cli/command_registry.h"
#include "cli/stop_signal.h"
#include "store/redis_source.h"
#include "store/store_source.h"
#include "streamer/context_source.h"
#include "streamer/endpoint.h"
#include "streamer/sender.h"

namespace {
struct SendOpts {
  std::string listen, dir, store, store_policy = "lru", store_model;
  uint64_t store_mem_bytes = 64ull << 20, store_disk_bytes = 1ull << 30;
  double duration_s = 0, idle_timeout_s = 60;
  int fault_corrupt_blob = -1;
  bool quiet = false;
};
}  // namespace

KVSTREAM_COMMAND("send", "Serve the KV caches (ctx.kvs) in a directory to receivers", [](CLI::App& sub) {
  using Opts = SendOpts;
  auto o = std::make_shared<Opts>();
  sub.add_option("--listen", o->listen, "HOST:PORT to listen on (port 0 = any; the bound port is printed)")->required();
  sub.add_option("--dir", o->dir, "directory with ctx.kvs containers and *.kvprofile profiles (default: none; needed unless --store redis://)");
  sub.add_option("--store", o->store,
                 "also serve this KV store's entries, by prefix key (hex): a store directory, or a Redis Cluster "
                 "redis://HOST:PORT[,HOST:PORT...][/TENANT][?read_ms=N&pool=N] (default tenant 'default'; default: none)");
  sub.add_option("--store-mem-bytes", o->store_mem_bytes, "memory tier capacity of --store (bytes)")->transform(CLI::AsSizeValue(false));
  sub.add_option("--store-disk-bytes", o->store_disk_bytes, "disk tier capacity of --store (bytes; not with redis://)")->transform(CLI::AsSizeValue(false));
  sub.add_option("--store-policy", o->store_policy, "--store eviction: lru | fifo | scheduler (redis://: lru | fifo)")->capture_default_str();
  sub.add_option("--store-model", o->store_model, "--store entries' model (default: the one model of --dir's profiles)");
  sub.add_option("--duration-s", o->duration_s, "exit after this many seconds (0 = until SIGINT/SIGTERM)");
  sub.add_option("--idle-timeout-s", o->idle_timeout_s, "drop a receiver silent for this long");
  sub.add_flag("--quiet", o->quiet, "no per-connection log");
  sub.add_option("--fault-corrupt-blob", o->fault_corrupt_blob,
                 "TESTING: corrupt the blob of this chunk whenever it is sent at a KV level (receivers fall back to text; -1 = none)");
  return kvstream::cli::Action([o] {
    namespace ks = kvstream::streamer;
    ks::SenderOptions so;
    std::tie(so.host, so.port) = ks::parse_host_port(o->listen, "--listen");
    so.dir = o->dir;
    const bool redis = kvstream::store::is_redis_uri(o->store);
    if (o->dir.empty() && !redis) throw std::invalid_argument("--dir is required (unless --store is redis://...)");
    auto log_mu = std::make_shared<std::mutex>();
    auto log_line = [log_mu](const std::string& s) {
      std::lock_guard<std::mutex> lock(*log_mu);
      std::cerr << "send: " << s << std::endl;
    };
    if (redis) {
      kvstream::store::RedisSourceOptions ro;
      ro.mem_bytes = o->store_mem_bytes;
      ro.policy = kvstream::store::parse_policy(o->store_policy);
      if (!o->quiet) ro.log = log_line;
      auto tier = std::make_shared<kvstream::store::RedisTier>(kvstream::store::parse_redis_uri(o->store));
      so.source = std::make_shared<kvstream::store::RedisContextSource>(
          tier, ro, o->dir.empty() ? nullptr : std::make_shared<ks::ContextDir>(o->dir));
    } else if (!o->store.empty()) {
      kvstream::store::StoreConfig sc;
      sc.dir = o->store;
      sc.mem_bytes = o->store_mem_bytes;
      sc.disk_bytes = o->store_disk_bytes;
      sc.policy = kvstream::store::parse_policy(o->store_policy);
      sc.domain = o->store_model;
      so.source = std::make_shared<kvstream::store::StoreContextSource>(sc, std::make_shared<ks::ContextDir>(o->dir));
    }
    so.idle_timeout_s = o->idle_timeout_s;
    so.faults.corrupt_blob_chunk = o->fault_corrupt_blob;
    if (!o->quiet) so.log = log_line;
    const kvstream::cli::StopSignal stop;  // before any thread starts
    ks::Sender sender(so);
    sender.start();
    std::cout << "send: serving " << (o->dir.empty() ? "" : o->dir + (o->store.empty() ? "" : " and "))
              << (o->store.empty() ? "" : "store " + o->store) << " on " << so.host << ":" << sender.port() << std::endl;
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
