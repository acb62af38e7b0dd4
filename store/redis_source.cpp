// Serving stored contexts from the Redis tier (see redis_source.h).
#include "store/redis_source.h"

#include <list>
#include <map>
#include <stdexcept>

#include "store/store_source.h"

namespace kvstream::store {

namespace {

// One value in the memory tier: exactly which context generation, chunk and level it is.
struct CacheKey {
  PrefixKey key;
  uint64_t generation = 0;
  uint32_t chunk = 0;
  int level = 0;
  auto operator<=>(const CacheKey&) const = default;
};

using Blob = std::shared_ptr<const std::vector<uint8_t>>;

// The sender's memory tier over Redis values: LRU (a hit moves the value to the front) or FIFO
// (insertion order only), O(1) per operation, never above its byte capacity.
class ValueCache {
 public:
  ValueCache(uint64_t capacity, PolicyKind policy) : cap_(capacity), lru_(policy != PolicyKind::Fifo) {}
  Blob get(const CacheKey& k) {
    std::lock_guard lock(mu_);
    auto it = map_.find(k);
    if (it == map_.end()) return nullptr;
    if (lru_) order_.splice(order_.begin(), order_, it->second.pos);
    return it->second.blob;
  }
  void put(const CacheKey& k, Blob b) {
    const uint64_t n = b->size();
    std::lock_guard lock(mu_);
    if (n > cap_ || map_.count(k)) return;
    while (used_ + n > cap_) {
      const CacheKey victim = order_.back();
      order_.pop_back();
      used_ -= map_.at(victim).blob->size();
      map_.erase(victim);
    }
    order_.push_front(k);
    map_.emplace(k, Slot{std::move(b), order_.begin()});
    used_ += n;
  }
  uint64_t used() const {
    std::lock_guard lock(mu_);
    return used_;
  }
  uint64_t entries() const {
    std::lock_guard lock(mu_);
    return map_.size();
  }

 private:
  struct Slot {
    Blob blob;
    std::list<CacheKey>::iterator pos;
  };
  mutable std::mutex mu_;
  uint64_t cap_, used_ = 0;
  bool lru_;
  std::list<CacheKey> order_;  // front = most recently inserted (or used, LRU)
  std::map<CacheKey, Slot> map_;
};

}  // namespace

struct RedisContextSource::State {
  std::shared_ptr<RedisTier> tier;
  RedisSourceOptions opt;
  ValueCache cache;
  std::atomic<uint64_t> contexts{0}, unknown{0}, blobs{0}, mem_hits{0}, redis_reads{0}, text_served{0}, unservable{0};
  State(std::shared_ptr<RedisTier> t, RedisSourceOptions o)
      : tier(std::move(t)), opt(std::move(o)), cache(opt.mem_bytes, opt.policy) {}
  void log(const std::string& s) const {
    if (opt.log) opt.log(s);
  }
};

namespace {

class RedisContext final : public streamer::ServedContext {
 public:
  RedisContext(std::string id, PrefixKey key, std::shared_ptr<const redis::ContextMeta> meta,
               std::shared_ptr<RedisContextSource::State> s, streamer::Manifest m)
      : ServedContext(std::move(id), std::move(m), meta->text_level), key_(key), meta_(std::move(meta)), s_(std::move(s)) {}

  Blob blob(uint32_t chunk, int level) const override {
    ++s_->blobs;
    if (chunk >= meta_->manifest.chunks.size() || level < 0 || uint32_t(level) >= meta_->ladder_levels)
      throw kvstream::Error(kvstream::ErrorCode::kInvalidArgument,
                            "context " + id() + " has no chunk " + std::to_string(chunk) + " level " + std::to_string(level));
    if (level == meta_->text_level) {
      ++s_->text_served;
      return std::make_shared<const std::vector<uint8_t>>(meta_->text_blobs[chunk]);
    }
    const CacheKey ck{key_, meta_->generation, chunk, level};
    if (auto hit = s_->cache.get(ck)) {
      ++s_->mem_hits;
      return hit;
    }
    ++s_->redis_reads;
    const std::pair<uint32_t, int> which{chunk, level};
    auto r = s_->tier->blobs(key_, *meta_, std::span(&which, 1));
    if (r[0].status != BlobRead::Status::kOk) {
      ++s_->unservable;
      s_->log("context " + id() + " chunk " + std::to_string(chunk) + " level " + std::to_string(level) +
              " cannot be served (" + r[0].why + "): answered empty, so the receiver fetches it as text");
      return std::make_shared<const std::vector<uint8_t>>();
    }
    auto b = std::make_shared<const std::vector<uint8_t>>(std::move(r[0].bytes));
    s_->cache.put(ck, b);
    return b;
  }

 private:
  PrefixKey key_;
  std::shared_ptr<const redis::ContextMeta> meta_;
  std::shared_ptr<RedisContextSource::State> s_;
};

}  // namespace

RedisContextSource::RedisContextSource(std::shared_ptr<RedisTier> tier, RedisSourceOptions opt,
                                       std::shared_ptr<streamer::ContextDir> fallback)
    : fallback_(std::move(fallback)) {
  if (!tier) throw std::invalid_argument("RedisContextSource: no Redis tier");
  if (opt.policy == PolicyKind::Scheduler)
    throw kvstream::Error(kvstream::ErrorCode::kInvalidArgument,
                          "a sender's memory tier over Redis has no request look-ahead: use lru or fifo");
  s_ = std::make_shared<State>(std::move(tier), std::move(opt));
}

RedisContextSource::~RedisContextSource() = default;

RedisTier& RedisContextSource::tier() { return *s_->tier; }

std::shared_ptr<const streamer::ServedContext> RedisContextSource::context(const std::string& id) {
  if (!StoreContextSource::is_key_id(id)) return fallback_ ? fallback_->context(id) : nullptr;
  const PrefixKey key = PrefixKey::from_hex(id);
  auto meta = s_->tier->meta(key);  // kUnavailable propagates: the sender reports it
  if (!meta) {
    ++s_->unknown;
    return nullptr;
  }
  ++s_->contexts;
  streamer::Manifest m = meta->manifest;
  m.context_id = id;
  if (auto p = profile_bytes(m.profile_hash)) m.profile_bytes = p->size();
  return std::make_shared<RedisContext>(id, key, std::move(meta), s_, std::move(m));
}

std::optional<std::vector<uint8_t>> RedisContextSource::profile_bytes(const std::string& hash_hex) {
  {
    std::lock_guard lock(profiles_mu_);
    if (auto it = profiles_.find(hash_hex); it != profiles_.end()) return *it->second;
  }
  std::optional<std::vector<uint8_t>> p;
  try {
    p = s_->tier->profile(hash_hex);
  } catch (const kvstream::Error&) {
    if (!fallback_) throw;
  }
  if (!p && fallback_) p = fallback_->profile_bytes(hash_hex);
  if (!p) return std::nullopt;
  std::lock_guard lock(profiles_mu_);
  profiles_[hash_hex] = std::make_shared<const std::vector<uint8_t>>(*p);
  return p;
}

RedisSourceStats RedisContextSource::stats() const {
  RedisSourceStats st;
  st.contexts = s_->contexts, st.unknown = s_->unknown, st.blobs = s_->blobs, st.mem_hits = s_->mem_hits;
  st.redis_reads = s_->redis_reads, st.text_served = s_->text_served, st.unservable = s_->unservable;
  st.mem_used = s_->cache.used();
  st.mem_entries = s_->cache.entries();
  return st;
}

}  // namespace kvstream::store
