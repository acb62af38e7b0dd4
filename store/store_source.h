// StoreContextSource: the sender serving from the KV store (AttentionStore's store feeding the
// serving node). `kvstream send --store DIR` uses it.
//
// Contract: a context id that is a prefix key in hex (32 lower-case hex digits: what
// `kvstream store put` and `kvstream recv --save-back` print) is served from the TieredStore;
// any other id, and every profile, comes from the fallback directory source. Each request is one
// store get() by key: a memory hit, or a verified disk read that promotes the entry, so serving
// counts as use for the store's eviction policy; a key the store does not know is looked for in
// its directory (TieredStore::adopt: a receiver's save-back from another process). An entry the
// store no longer holds, or whose
// file fails its checks, is an unknown context: it is never served. An entry whose payload is not
// a valid .kvs container throws std::runtime_error (the sender turns it into an ERROR frame).
// Thread-safe (the store is). Parsed entries and fallback contexts are kept in a byte-bounded cache
// (parse_cache_bytes), so an entry is parsed once while it stays hot; a request still reaches the
// store (cacheable() is false: serving counts as use).
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/tiered_store.h"
#include "streamer/context_cache.h"
#include "streamer/context_source.h"

namespace kvstream::store {

class StoreContextSource : public streamer::ContextSource {
 public:
  // Opens the store `cfg` describes; `fallback` serves non-key ids and the profiles. An empty
  // cfg.domain (the model name in every key) is taken from the fallback's profiles, which must
  // then name exactly one model (std::invalid_argument otherwise).
  StoreContextSource(StoreConfig cfg, std::shared_ptr<streamer::ContextDir> fallback,
                     uint64_t parse_cache_bytes = 64ull << 20);
  // Persists the memory tier (TieredStore::demote_all): entries served from memory stay stored.
  ~StoreContextSource() override;
  TieredStore& store() { return *store_; }

  std::shared_ptr<const streamer::ServedContext> context(const std::string& id) override;
  std::optional<std::vector<uint8_t>> profile_bytes(const std::string& hash_hex) override;
  bool cacheable() const override { return false; }

  // Whether `id` names a store entry (a prefix key in hex).
  static bool is_key_id(const std::string& id);

 private:
  std::shared_ptr<streamer::ContextDir> fallback_;
  std::unique_ptr<TieredStore> store_;
  std::shared_ptr<streamer::ContextCache> parsed_;
};

// Tenant T's store under a deployment (docs/PROTOCOL.md): directory base.dir/T and the key secret
// tenant_secret(deployment_secret, T). An empty tenant (an insecure sender) is the base itself,
// keyed with the deployment secret.
StoreConfig tenant_store_config(StoreConfig base, const std::string& tenant, std::span<const uint8_t> deployment_secret);

}  // namespace kvstream::store
