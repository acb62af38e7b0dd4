// `kvstream store put`: imports a codec .kvs container (every level + text, e.g. what a receiver
// saved back) into a store directory's disk tier under the prefix key of its tokens, durably
// (crash-safe write). Prints the key. Logic: store/tiered_store.h.
// Example: kvstream store put --dir store-dir --kvs ctx.kvs
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>

#include "cli/command_registry.h"
#include "codec/container.h"
#include "kvstream/error.h"
#include "store/store_source.h"
#include "store/tiered_store.h"
#include "streamer/auth.h"

KVSTREAM_COMMAND("store put", "Import a .kvs container into a store directory (disk tier)", ([](CLI::App& sub) {
  struct Opts {
    std::string dir, kvs;
    uint64_t disk_bytes = 1ull << 30;
    int chunk_tokens = 64;
    std::string secret_file, tenant;
  };
  auto o = std::make_shared<Opts>();
  sub.add_option("--dir", o->dir, "store directory (disk tier)")->required();
  sub.add_option("--kvs", o->kvs, "codec .kvs container to import")->required();
  sub.add_option("--disk-bytes", o->disk_bytes, "disk tier capacity (bytes)")->transform(CLI::AsSizeValue(false));
  sub.add_option("--chunk-tokens", o->chunk_tokens, "prefix-key chunk (tokens)");
  sub.add_option("--secret-file", o->secret_file, "the store keys' deployment secret (default: none, the public all-zero key)");
  sub.add_option("--tenant", o->tenant, "the tenant's store (DIR/TENANT, its keys; needs --secret-file; default: none, DIR itself)");
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
    store::StoreConfig sc;
    sc.dir = o->dir;
    sc.mem_bytes = 0;  // straight to the disk tier: durable when this command returns
    sc.disk_bytes = o->disk_bytes;
    sc.chunk_tokens = o->chunk_tokens;
    if (!o->tenant.empty() && o->secret_file.empty()) throw std::invalid_argument("--tenant needs --secret-file");
    sc = store::tenant_store_config(sc, o->tenant,
                                    o->secret_file.empty() ? streamer::Secret() : streamer::load_secret_file(o->secret_file));
    sc.domain = r.info().model_name;
    store::TieredStore s(sc);
    const auto key = s.put(tokens, std::move(bytes));
    if (!s.where(key)) throw std::runtime_error("the store could not keep the entry (larger than --disk-bytes?)");
    std::printf("%s %zu tokens, model %s\n", key.hex().c_str(), tokens.size(), r.info().model_name.c_str());
    return 0;
  });
}));
