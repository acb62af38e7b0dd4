// LowerTier: a tier below the TieredStore's memory and disk (AttentionStore's hierarchy ending in
// a shared tier), e.g. the Redis Cluster tier (store/redis_tier.h) that many serving nodes share.
//
// Contract (how TieredStore uses it, see StoreConfig::lower):
// - Write-through: every TieredStore::put() also stores the record here (after the local put,
//   outside the store's lock, so on the caller's thread: the async saver's worker for saves).
//   A failure (kvstream::Error) is counted in StoreStats::shared_errors, never thrown: the local
//   tiers hold the entry. put() returns false when the tier does not take this payload.
// - Read-through: get() consults it only when neither local tier holds a prefix of the request;
//   a hit is verified here (CRCs) and by the store (key == hash of its tokens) and then kept
//   locally like a new entry (memory when the policy lets it in, else disk).
// - The tier evicts by its own rules (Redis: maxmemory-policy); a miss is normal.
// - Implementations are thread-safe.
#pragma once
#include <optional>
#include <span>
#include <string>

#include "store/key.h"
#include "store/record.h"

namespace kvstream::store {

class LowerTier {
 public:
  virtual ~LowerTier() = default;
  virtual std::string name() const = 0;
  // chain = the store's PrefixHasher::chain(rec.tokens); `replaces` names the entry this one
  // supersedes (the tier may drop it). Throws kvstream::Error when the write fails.
  virtual bool put(const Record& rec, std::span<const PrefixKey> chain, const std::optional<PrefixKey>& replaces) = 0;
  // The stored record sharing the longest prefix of `tokens` (chain = hasher.chain(tokens)), or
  // nullopt; throws kvstream::Error(kUnavailable) when the tier cannot be reached.
  virtual std::optional<Record> get(std::span<const int32_t> tokens, std::span<const PrefixKey> chain) = 0;
  virtual std::optional<Record> get(const PrefixKey& key) = 0;
};

}  // namespace kvstream::store
