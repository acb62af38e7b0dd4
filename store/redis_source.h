// RedisContextSource: a stateless sender's view of the Redis tier (`kvstream send --store
// redis://...`): any number of senders on any hosts serve the same stored contexts.
//
// Contract:
// - context(id): an id that is a prefix key in hex is one meta read from Redis (nullptr when the
//   cluster does not hold it, or its meta fails its checks: never served); other ids go to the
//   optional fallback directory. A cluster that cannot answer within the read budget throws
//   kvstream::Error(kUnavailable) (the sender answers with an ERROR frame).
// - The served context's blob(chunk, level) reads exactly that value (one GET) unless the memory
//   tier holds it. The text level never touches Redis (it travels in the meta), so a chunk can
//   always be served as text. A KV value that cannot be produced — evicted, failing its checks
//   (CRC, identity, generation), or its node unreachable within the read budget even through a
//   replica — is answered with an EMPTY blob: receivers reject it like a blob that fails to
//   decode and fetch that chunk again as text (docs/PROTOCOL.md, "Senders on a shared store").
//   A wrong value is never served.
// - Memory tier: verified values are kept in memory up to mem_bytes; the store's eviction policy
//   (LRU, FIFO; the scheduler policy without a look-ahead behaves as LRU) decides which values
//   stay. mem_bytes = 0 keeps nothing (every request reads Redis).
// - Profiles come from Redis (checked against their hash, kept in memory), else the fallback.
// - Thread-safe.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "store/policy.h"
#include "store/redis_tier.h"
#include "streamer/context_source.h"

namespace kvstream::store {

struct RedisSourceOptions {
  uint64_t mem_bytes = 64ull << 20;
  PolicyKind policy = PolicyKind::Lru;
  std::function<void(const std::string&)> log;  // one line per value that could not be served
};

struct RedisSourceStats {
  uint64_t contexts = 0, unknown = 0, blobs = 0, mem_hits = 0, redis_reads = 0, text_served = 0;
  uint64_t unservable = 0;  // KV values answered with an empty blob (text fallback)
  uint64_t mem_used = 0, mem_entries = 0;
};

class RedisContextSource : public streamer::ContextSource {
 public:
  RedisContextSource(std::shared_ptr<RedisTier> tier, RedisSourceOptions opt = {},
                     std::shared_ptr<streamer::ContextDir> fallback = nullptr);
  ~RedisContextSource() override;
  std::shared_ptr<const streamer::ServedContext> context(const std::string& id) override;
  std::optional<std::vector<uint8_t>> profile_bytes(const std::string& hash_hex) override;
  // Not cacheable: the store is shared, so every REQUEST reads the context's meta (it may have been
  // replaced, evicted or moved by a failover; a meta read refreshes the cluster's slot map), and
  // this source's own memory tier decides what is kept.
  bool cacheable() const override { return false; }
  RedisSourceStats stats() const;
  RedisTier& tier();

  struct State;  // shared with the contexts it serves, which may outlive the source

 private:
  std::shared_ptr<State> s_;
  std::shared_ptr<streamer::ContextDir> fallback_;
  std::mutex profiles_mu_;
  std::map<std::string, std::shared_ptr<const std::vector<uint8_t>>> profiles_;
};

}  // namespace kvstream::store
