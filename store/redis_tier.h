// RedisTier: stored contexts in a Redis Cluster shared by many serving nodes — one value per
// (context, chunk, level), plus one meta value (manifest, container head, text) per context, one
// index value per prefix-key chunk, and the profiles — so that a sender fetches exactly the chunk
// and level a receiver asked for. It is also a LowerTier below a TieredStore's memory and disk.
//
// Keys (tenant T, context key K in hex, chunk c, ladder level l; the {...} part is the hash tag):
//   kvs:{T:K}:meta                 the context's meta (store/redis_value.h)
//   kvs:{T:K}:c:l                  a blob, layout "context" (every value of K on one node)
//   kvs:{T:K:c}:l                  a blob, layout "chunk" (chunks spread over the nodes)
//   kvs:{T:idx:P}                  index: prefix key P (a chunk boundary of K's tokens) -> K
//   kvs:{T:profile:H}              a codec profile by hash (FNV-1a 64 hex)
// T is [A-Za-z0-9._-]{1,64}; tenants never see each other's keys. K is the store's key
// (store/key.h) of the context's tokens: writers of the tier take it from hasher() (the one place
// that makes this tier's key function, so that a keyed, per-tenant key secret goes there); reads
// use the key or chain they are given.
//
// Contract:
// - put() validates the payload as a .kvs container, then writes its blobs and index entries
//   (pipelined, in bounded batches), then the meta last, so that a reader that finds the meta
//   finds a complete context unless Redis has since evicted some of it. With wait_replicas > 0
//   every batch is acknowledged by that many replicas (WAIT) before put() returns; a put that
//   returns is durable against the loss of any one master. Throws kInvalidArgument for a payload
//   that is not a container, kUnavailable when a write is not made or not acknowledged within
//   write_budget_s.
// - Every value read is verified (value CRC, kind, key, chunk, level and the context's
//   generation = a hash of its container): a value that fails is counted, deleted from the
//   cluster (best effort) and treated as missing, never returned; a value of another generation
//   (the context was stored again since its meta was read) is a miss. A meta that fails is a miss. meta()/container()/match() throw kUnavailable
//   when the cluster cannot answer within read_budget_s; blobs() never throws for that: each
//   result says ok, missing, corrupt or unavailable.
// - Thread-safe.
#pragma once
#include <atomic>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "store/lower_tier.h"
#include "store/redis_cluster.h"
#include "store/redis_value.h"

namespace kvstream::store {

struct RedisTierOptions {
  redis::ClusterOptions cluster;
  std::string tenant = "default";
  // The key secret of the tenant's prefix keys (store/key.h: tenant_secret()); empty = the public
  // all-zero key (tests, an insecure deployment). hasher() uses it.
  std::vector<uint8_t> key_secret;
  // For new contexts (readers follow the meta). Spread by default: in bench_scaleout.sh the two
  // layouts served alike within noise (docs/RESULTS.md, issue 16); co-located costs less Redis
  // CPU per chunk but put ~75 % of a hot context's load on one master, and a large context's
  // memory on one node.
  redis::Layout layout = redis::Layout::kChunk;
  int wait_replicas = 1;         // replicas that acknowledge every write (0: none)
  double wait_timeout_s = 1.0;
  double read_budget_s = 0.5;    // a read keeps retrying (failover) this long
  double write_budget_s = 5.0;
  size_t batch_bytes = 4u << 20; // values per pipelined write batch, in bytes
};

// "redis://HOST:PORT[,HOST:PORT...][/TENANT][?layout=chunk|context&wait=N&pool=N&read_ms=N&write_ms=N]"
// -> options (kvstream::Error kInvalidArgument otherwise).
RedisTierOptions parse_redis_uri(std::string_view uri);
bool is_redis_uri(std::string_view s);
// `base` for tenant T under a deployment secret: T's namespace (unless T is empty: the URI's) and
// T's key secret (tenant_secret(deployment, T); empty deployment secret = the public key).
RedisTierOptions tenant_redis_options(RedisTierOptions base, const std::string& tenant,
                                      std::span<const uint8_t> deployment_secret);

struct RedisTierStats {
  uint64_t puts = 0, values_written = 0, bytes_written = 0, erased = 0;
  uint64_t meta_reads = 0, meta_misses = 0, blob_reads = 0, blob_misses = 0, corrupt = 0, unavailable = 0;
  uint64_t bytes_read = 0;
};

struct BlobRead {
  enum class Status { kOk, kMissing, kCorrupt, kUnavailable };
  Status status = Status::kMissing;
  std::vector<uint8_t> bytes;
  std::string why;  // when not ok
};

class RedisTier : public LowerTier {
 public:
  explicit RedisTier(RedisTierOptions opt);  // connects: kUnavailable when no seed answers
  const RedisTierOptions& options() const { return opt_; }
  redis::Cluster& cluster() { return *cluster_; }

  // The key function of this tier's entries (store/key.h): the same PrefixHasher as a local
  // store of the same model and chunking, so that a key found in one is the key in the other.
  PrefixHasher hasher(int chunk_tokens, std::string_view domain) const;

  // Key names (see the table above).
  std::string meta_key(const PrefixKey& k) const;
  std::string blob_key(const PrefixKey& k, redis::Layout layout, uint32_t chunk, uint32_t level) const;
  std::string index_key(const PrefixKey& p) const;
  std::string profile_key(const std::string& hash_hex) const;

  // Stores a context: `container` (.kvs bytes) of `tokens` under `key`, indexed by `chain` (the
  // store hasher's chain of `tokens`; chain.back() == key). Returns the bytes written.
  uint64_t put_context(const PrefixKey& key, std::span<const PrefixKey> chain, std::span<const uint8_t> container);
  void put_profile(const std::string& hash_hex, std::span<const uint8_t> bytes);

  std::shared_ptr<const redis::ContextMeta> meta(const PrefixKey& key);
  // Blobs (chunk, ladder level) of a context whose meta is `m`, in one pipelined batch.
  std::vector<BlobRead> blobs(const PrefixKey& key, const redis::ContextMeta& m,
                              std::span<const std::pair<uint32_t, int>> which, double budget_s = -1);
  // The context's whole .kvs container (every level), or nullopt if any part is missing/corrupt.
  std::optional<std::vector<uint8_t>> container(const PrefixKey& key, const redis::ContextMeta& m);
  // The profile's bytes (checked against the hash), or nullopt.
  std::optional<std::vector<uint8_t>> profile(const std::string& hash_hex);
  // The stored context sharing the longest token prefix with `tokens` (chain = hasher chain of
  // `tokens`); matched = that prefix's length.
  struct MatchResult {
    PrefixKey key;
    std::shared_ptr<const redis::ContextMeta> meta;
    size_t matched = 0;
  };
  std::optional<MatchResult> match(std::span<const int32_t> tokens, std::span<const PrefixKey> chain);
  bool erase(const PrefixKey& key);  // meta and blobs (the index entries go stale: a miss)

  // LowerTier
  std::string name() const override { return "redis"; }
  bool put(const Record& rec, std::span<const PrefixKey> chain, const std::optional<PrefixKey>& replaces) override;
  std::optional<Record> get(std::span<const int32_t> tokens, std::span<const PrefixKey> chain) override;
  std::optional<Record> get(const PrefixKey& key) override;

  RedisTierStats stats() const;

 private:
  void write(std::vector<redis::Request>& batch);  // durable per options; throws kUnavailable
  void drop_corrupt(const std::string& key);
  std::optional<Record> record_of(const PrefixKey& key, const redis::ContextMeta& m);
  redis::RunOptions read_options(double budget_s = -1) const;
  [[noreturn]] void unavailable(const std::string& what, const std::string& why);

  RedisTierOptions opt_;
  std::unique_ptr<redis::Cluster> cluster_;
  struct Counters {
    std::atomic<uint64_t> puts{0}, values_written{0}, bytes_written{0}, erased{0}, meta_reads{0}, meta_misses{0};
    std::atomic<uint64_t> blob_reads{0}, blob_misses{0}, corrupt{0}, unavailable{0}, bytes_read{0};
  };
  mutable Counters n_;
};

}  // namespace kvstream::store
