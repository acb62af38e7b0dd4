// `kvstream store put`: imports a codec .kvs container (every level + text, e.g. what a receiver
// saved back) into a store directory's disk tier under the prefix key of its tokens, durably
// (crash-safe write), or into a Redis Cluster tier (one value per chunk and level, acknowledged by
// the replicas). Prints the key. Logic: store/tiered_store.h, store/redis_tier.h.
// Example: kvstream store put --dir store-dir --kvs ctx.kvs
//          kvstream store put --redis redis://127.0.0.1:7000 --kvs ctx.kvs --profile ctx.kvprofile
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>

#include "cli/command_registry.h"
#include "codec/container.h"
#include "codec/profile.h"
#include "kvstream/error.h"
#include "store/redis_tier.h"
#include "store/store_source.h"
#include "store/tiered_store.h"
#include "streamer/auth.h"
#include "streamer/context_source.h"

KVSTREAM_COMMAND("store put", "Import a .kvs container into a store directory (disk tier)", ([](CLI::App& sub) {
  struct Opts {
    std::string dir, kvs, redis, profile;
    uint64_t disk_bytes = 1ull << 30;
    int chunk_tokens = 64;
    std::string secret_file, tenant;
  };
  auto o = std::make_shared<Opts>();
  sub.add_option("--dir", o->dir, "store directory (disk tier); or give --redis (default: none)");
  sub.add_option("--redis", o->redis,
                 "Redis Cluster tier instead of --dir: redis://HOST:PORT[,...][/TENANT][?layout=chunk|context&wait=N] "
                 "(default: none; tenant 'default', layout chunk: a context's chunks spread over the nodes, wait 1 replica)");
  sub.add_option("--profile", o->profile, "--redis: also store this codec profile (what senders serve with the entry; default: none)");
  sub.add_option("--kvs", o->kvs, "codec .kvs container to import")->required();
  sub.add_option("--disk-bytes", o->disk_bytes, "disk tier capacity (bytes)")->transform(CLI::AsSizeValue(false));
  sub.add_option("--chunk-tokens", o->chunk_tokens, "prefix-key chunk (tokens)");
  sub.add_option("--secret-file", o->secret_file, "the store keys' deployment secret (default: none, the public all-zero key)");
  sub.add_option("--tenant", o->tenant, "the tenant's store (DIR/TENANT or, with --redis, its namespace; its keys; needs --secret-file; default: none, DIR itself / the URI's tenant)");
  return kvstream::cli::Action([o] {
    using namespace kvstream;
    std::ifstream f(o->kvs, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open " + o->kvs);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const auto r = [&] {
      try {
        return codec::ContainerReader::parse(bytes);
      } catch (const Error& e) {  // name the file, as ContainerReader::open does
        throw Error(e.code(), o->kvs + ": " + e.what());
      } catch (const std::runtime_error& e) {
        throw std::runtime_error(o->kvs + ": " + e.what());
      }
    }();
    std::vector<int32_t> tokens;
    for (uint32_t c = 0; c < r.info().num_chunks; ++c) {
      const auto t = r.tokens(c);
      tokens.insert(tokens.end(), t.begin(), t.end());
    }
    if (tokens.empty()) throw std::runtime_error(o->kvs + ": the container holds no tokens");
    if (o->dir.empty() == o->redis.empty()) throw std::invalid_argument("give exactly one of --dir and --redis");
    if (!o->tenant.empty() && o->secret_file.empty()) throw std::invalid_argument("--tenant needs --secret-file");
    const auto secret = o->secret_file.empty() ? streamer::Secret() : streamer::load_secret_file(o->secret_file);
    if (!o->redis.empty()) {
      store::RedisTier tier(store::tenant_redis_options(store::parse_redis_uri(o->redis), o->tenant, secret));
      if (!o->profile.empty()) {
        const auto p = codec::serialize_profile(codec::load_profile(o->profile));
        tier.put_profile(streamer::hash_hex(codec::fnv1a64(p)), p);
      }
      const auto chain = tier.hasher(o->chunk_tokens, r.info().model_name).chain(tokens);
      const uint64_t stored = tier.put_context(chain.back(), chain, bytes);
      std::printf("%s %zu tokens, model %s, %llu bytes in %s\n", chain.back().hex().c_str(), tokens.size(),
                  r.info().model_name.c_str(), static_cast<unsigned long long>(stored), o->redis.c_str());
      return 0;
    }
    store::StoreConfig sc;
    sc.dir = o->dir;
    sc.mem_bytes = 0;  // straight to the disk tier: durable when this command returns
    sc.disk_bytes = o->disk_bytes;
    sc.chunk_tokens = o->chunk_tokens;
    sc = store::tenant_store_config(sc, o->tenant, secret);
    sc.domain = r.info().model_name;
    store::TieredStore s(sc);
    const auto key = s.put(tokens, std::move(bytes));
    if (!s.where(key)) throw std::runtime_error("the store could not keep the entry (larger than --disk-bytes?)");
    std::printf("%s %zu tokens, model %s\n", key.hex().c_str(), tokens.size(), r.info().model_name.c_str());
    return 0;
  });
}));
