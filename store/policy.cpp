#include "store/policy.h"

#include <limits>
#include <stdexcept>

namespace kvstream::store {

PolicyKind parse_policy(std::string_view name) {
  if (name == "lru") return PolicyKind::Lru;
  if (name == "fifo") return PolicyKind::Fifo;
  if (name == "scheduler") return PolicyKind::Scheduler;
  throw std::invalid_argument("unknown policy '" + std::string(name) + "' (lru, fifo or scheduler)");
}

std::string policy_name(PolicyKind k) {
  switch (k) {
    case PolicyKind::Lru: return "lru";
    case PolicyKind::Fifo: return "fifo";
    case PolicyKind::Scheduler: return "scheduler";
  }
  return "?";
}

std::string tier_name(Tier t) { return t == Tier::Memory ? "memory" : t == Tier::Disk ? "disk" : "shared"; }

void EvictionPolicy::on_insert(const PrefixKey& k, const std::optional<PrefixKey>& continues) {
  Stamp s;
  s.inserted = s.used = ++clock_;
  if (continues)
    if (const Stamp* old = stamp(*continues)) s.inserted = old->inserted;
  stamps_[k] = s;
}

void EvictionPolicy::on_access(const PrefixKey& k) {
  auto it = stamps_.find(k);
  if (it != stamps_.end()) it->second.used = ++clock_;
}

void EvictionPolicy::on_erase(const PrefixKey& k) { stamps_.erase(k); }

const EvictionPolicy::Stamp* EvictionPolicy::stamp(const PrefixKey& k) const {
  auto it = stamps_.find(k);
  return it == stamps_.end() ? nullptr : &it->second;
}

namespace {

constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();

class OrderPolicy final : public EvictionPolicy {
 public:
  explicit OrderPolicy(bool fifo) : fifo_(fifo) {}
  PolicyKind kind() const override { return fifo_ ? PolicyKind::Fifo : PolicyKind::Lru; }
  std::optional<PrefixKey> victim(std::span<const PrefixKey> residents, const PrefixKey&,
                                  Tier) const override {
    std::optional<PrefixKey> best;
    uint64_t best_t = kNever;
    for (const auto& k : residents) {
      const Stamp* s = stamp(k);
      const uint64_t t = s ? (fifo_ ? s->inserted : s->used) : 0;
      if (!best || t < best_t) best = k, best_t = t;
    }
    return best;
  }

 private:
  bool fifo_;
};

class SchedulerPolicy final : public EvictionPolicy {
 public:
  PolicyKind kind() const override { return PolicyKind::Scheduler; }
  void set_lookahead(const std::vector<PrefixKey>& upcoming, size_t window) override {
    rank_.clear();
    for (const auto& k : upcoming) {
      if (rank_.size() >= window) break;
      rank_.emplace(k, rank_.size());  // keeps the first (nearest) position of each key
    }
  }
  std::optional<PrefixKey> victim(std::span<const PrefixKey> residents, const PrefixKey& incoming,
                                  Tier) const override {
    std::optional<PrefixKey> best;
    uint64_t best_rank = 0, best_used = 0;
    for (const auto& k : residents) {
      const uint64_t r = rank(k);
      const Stamp* s = stamp(k);
      const uint64_t used = s ? s->used : 0;
      if (!best || r > best_rank || (r == best_rank && used < best_used))
        best = k, best_rank = r, best_used = used;
    }
    // Admission: keep every resident if all of them are needed sooner than the newcomer.
    if (best && best_rank != kNever && best_rank < rank(incoming)) return std::nullopt;
    return best;
  }

 private:
  uint64_t rank(const PrefixKey& k) const {
    auto it = rank_.find(k);
    return it == rank_.end() ? kNever : it->second;
  }
  std::unordered_map<PrefixKey, uint64_t, PrefixKeyHash> rank_;
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_policy(PolicyKind kind) {
  switch (kind) {
    case PolicyKind::Lru: return std::make_unique<OrderPolicy>(false);
    case PolicyKind::Fifo: return std::make_unique<OrderPolicy>(true);
    case PolicyKind::Scheduler: return std::make_unique<SchedulerPolicy>();
  }
  throw std::invalid_argument("make_policy: bad kind");
}

}  // namespace kvstream::store
