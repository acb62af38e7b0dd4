// `kvstream store get`: exports a stored context (by key) from a store directory or a Redis
// Cluster tier as a .kvs container file — e.g. into the directory `kvstream send` serves. Corrupt
// entries are detected (CRC) and never exported. Logic: store/tiered_store.h, store/redis_tier.h.
// Example: kvstream store get --dir store-dir --key 0123...cdef --model-name stories260K -o serve/ctx.kvs
#include <cstdio>
#include <fstream>
#include <memory>

#include "cli/command_registry.h"
#include "store/redis_tier.h"
#include "store/store_source.h"
#include "store/tiered_store.h"
#include "streamer/auth.h"

KVSTREAM_COMMAND("store get", "Export a stored context as a .kvs container", ([](CLI::App& sub) {
  struct Opts {
    std::string dir, key, model_name = "stories260K", out, redis;
    uint64_t disk_bytes = 1ull << 30;
    int chunk_tokens = 64;
    std::string secret_file, tenant;
  };
  auto o = std::make_shared<Opts>();
  sub.add_option("--dir", o->dir, "store directory (disk tier); or give --redis (default: none)");
  sub.add_option("--redis", o->redis, "Redis Cluster tier instead of --dir: redis://HOST:PORT[,...][/TENANT] (default: none; tenant 'default')");
  sub.add_option("--key", o->key, "prefix key (32 hex digits, as printed by store put)")->required();
  sub.add_option("--model-name", o->model_name, "model the keys were made for");
  sub.add_option("--disk-bytes", o->disk_bytes, "disk tier capacity (bytes)")->transform(CLI::AsSizeValue(false));
  sub.add_option("--chunk-tokens", o->chunk_tokens, "prefix-key chunk (tokens)");
  sub.add_option("--secret-file", o->secret_file, "the store keys' deployment secret (default: none, the public all-zero key)");
  sub.add_option("--tenant", o->tenant, "the tenant's store (DIR/TENANT or, with --redis, its namespace; needs --secret-file with --dir; default: none, DIR itself / the URI's tenant)");
  sub.add_option("-o,--output", o->out, ".kvs file to write")->required();
  return kvstream::cli::Action([o] {
    using namespace kvstream;
    if (o->dir.empty() == o->redis.empty()) throw std::invalid_argument("give exactly one of --dir and --redis");
    auto write = [&](const std::vector<uint8_t>& bytes) {
      std::ofstream out(o->out, std::ios::binary);
      out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
      if (!out) throw std::runtime_error("failed writing " + o->out);
    };
    if (!o->redis.empty()) {
      store::RedisTier tier(store::tenant_redis_options(store::parse_redis_uri(o->redis), o->tenant, {}));
      const auto rec = tier.get(store::PrefixKey::from_hex(o->key));
      if (!rec) throw kvstream::Error(kvstream::ErrorCode::kNotFound, "no valid entry " + o->key + " in " + o->redis);
      write(rec->payload);
      std::printf("wrote %s: %zu tokens, %zu bytes\n", o->out.c_str(), rec->tokens.size(), rec->payload.size());
      return 0;
    }
    store::StoreConfig sc;
    sc.dir = o->dir;
    sc.mem_bytes = 0;
    sc.disk_bytes = o->disk_bytes;
    sc.chunk_tokens = o->chunk_tokens;
    if (!o->tenant.empty() && o->secret_file.empty()) throw std::invalid_argument("--tenant needs --secret-file");
    sc = store::tenant_store_config(sc, o->tenant,
                                    o->secret_file.empty() ? streamer::Secret() : streamer::load_secret_file(o->secret_file));
    sc.domain = o->model_name;
    store::TieredStore s(sc);
    const auto f = s.get(store::PrefixKey::from_hex(o->key));
    if (!f) throw std::runtime_error("no valid entry " + o->key + " in " + o->dir);
    write(f->record->payload);
    std::printf("wrote %s: %zu tokens, %zu bytes\n", o->out.c_str(), f->record->tokens.size(), f->record->payload.size());
    return 0;
  });
}));
