// Eviction policies of the tiered store: LRU, FIFO and AttentionStore's scheduler-aware policy.
//
// Contract: the store calls these only while holding its own lock (policies are not thread-safe).
// victim(residents, incoming, tier) names the resident of `tier` to move out (memory -> disk, or
// disk -> dropped) so that `incoming` fits, or returns nullopt when `incoming` should be the one
// to go instead (only the scheduler-aware policy ever refuses: when every resident is needed
// sooner than `incoming` according to the look-ahead queue).
// - LRU: least recently inserted or accessed first.
// - FIFO: earliest inserted first; an entry that continues a conversation (put with `replaces`, or
//   a put whose tokens extend a stored entry) keeps its predecessor's insertion time, so FIFO
//   evicts the oldest *conversation*, as AttentionStore's baseline does.
// - Scheduler-aware: rank(k) = position of k among the distinct keys of the look-ahead queue if
//   that position is < the eviction window ((memory + disk capacity) / average entry size), else
//   infinity. The victim is the resident with the largest rank (ties: least recently used), i.e.
//   evict from the far end and never evict inside the window while something outside it exists.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "store/key.h"

namespace kvstream::store {

enum class Tier { Memory, Disk, Shared };  // Shared: a LowerTier below both (store/lower_tier.h)
enum class PolicyKind { Lru, Fifo, Scheduler };

// "lru", "fifo" or "scheduler" (std::invalid_argument otherwise).
PolicyKind parse_policy(std::string_view name);
std::string policy_name(PolicyKind k);
std::string tier_name(Tier t);

class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;
  virtual PolicyKind kind() const = 0;
  // A new entry; `continues` names the entry it supersedes (same conversation), if any.
  void on_insert(const PrefixKey& k, const std::optional<PrefixKey>& continues = std::nullopt);
  void on_access(const PrefixKey& k);
  void on_erase(const PrefixKey& k);
  // Upcoming requests' keys in queue order (duplicates allowed) and the eviction window (count of
  // distinct keys protected). Ignored by LRU and FIFO.
  virtual void set_lookahead(const std::vector<PrefixKey>& /*upcoming*/, size_t /*window*/) {}
  virtual std::optional<PrefixKey> victim(std::span<const PrefixKey> residents,
                                          const PrefixKey& incoming, Tier tier) const = 0;

 protected:
  struct Stamp {
    uint64_t inserted = 0, used = 0;
  };
  const Stamp* stamp(const PrefixKey& k) const;
  std::unordered_map<PrefixKey, Stamp, PrefixKeyHash> stamps_;
  uint64_t clock_ = 0;
};

std::unique_ptr<EvictionPolicy> make_policy(PolicyKind kind);

}  // namespace kvstream::store
