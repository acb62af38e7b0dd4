// `kvstream store get`: exports a stored context (by key, or by the longest stored prefix of the
// tokens of a given .kvs) as a .kvs container file — e.g. into the directory `kvstream send`
// serves. Corrupt entries are detected (CRC) and never exported. Logic: store/tiered_store.h.
// Example: kvstream store get --dir store-dir --key 0123...cdef --model-name stories260K -o serve/ctx.kvs
#include <cstdio>
#include <fstream>
#include <memory>

#include "cli/command_registry.h"
#include "store/store_source.h"
#include "store/tiered_store.h"
#include "streamer/auth.h"

KVSTREAM_COMMAND("store get", "Export a stored context as a .kvs container", ([](CLI::App& sub) {
  struct Opts {
    std::string dir, key, model_name = "stories260K", out;
    uint64_t disk_bytes = 1ull << 30;
    int chunk_tokens = 64;
    std::string secret_file, tenant;
  };
  auto o = std::make_shared<Opts>();
  sub.add_option("--dir", o->dir, "store directory (disk tier)")->required();
  sub.add_option("--key", o->key, "prefix key (32 hex digits, as printed by store put)")->required();
  sub.add_option("--model-name", o->model_name, "model the keys were made for");
  sub.add_option("--disk-bytes", o->disk_bytes, "disk tier capacity (bytes)")->transform(CLI::AsSizeValue(false));
  sub.add_option("--chunk-tokens", o->chunk_tokens, "prefix-key chunk (tokens)");
  sub.add_option("--secret-file", o->secret_file, "the store keys' deployment secret (default: none, the public all-zero key)");
  sub.add_option("--tenant", o->tenant, "the tenant's store (DIR/TENANT, its keys; needs --secret-file; default: none, DIR itself)");
  sub.add_option("-o,--output", o->out, ".kvs file to write")->required();
  return kvstream::cli::Action([o] {
    using namespace kvstream;
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
    std::ofstream out(o->out, std::ios::binary);
    out.write(reinterpret_cast<const char*>(f->record->payload.data()), std::streamsize(f->record->payload.size()));
    if (!out) throw std::runtime_error("failed writing " + o->out);
    std::printf("wrote %s: %zu tokens, %zu bytes\n", o->out.c_str(), f->record->tokens.size(), f->record->payload.size());
    return 0;
  });
}));
