// Byte-bounded LRU cache of parsed contexts and profiles (see context_cache.h).
#include "streamer/context_cache.h"

namespace kvstream::streamer {

ContextCache::Entry* ContextCache::find(const std::string& key) {
  const auto it = index_.find(key);
  if (it == index_.end()) {
    ++st_.misses;
    return nullptr;
  }
  ++st_.hits;
  lru_.splice(lru_.begin(), lru_, it->second);
  return &*it->second;
}

void ContextCache::insert(Entry e) {
  if (e.bytes > capacity_) return;
  if (const auto it = index_.find(e.key); it != index_.end()) {
    st_.bytes -= it->second->bytes;
    lru_.erase(it->second);
    index_.erase(it);
  }
  while (!lru_.empty() && st_.bytes + e.bytes > capacity_) {
    st_.bytes -= lru_.back().bytes;
    index_.erase(lru_.back().key);
    lru_.pop_back();
    ++st_.evictions;
  }
  st_.bytes += e.bytes;
  const std::string key = e.key;
  lru_.push_front(std::move(e));
  index_[key] = lru_.begin();
}

std::shared_ptr<const ServedContext> ContextCache::context(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  const Entry* e = find("c:" + key);
  return e ? e->ctx : nullptr;
}

void ContextCache::put_context(const std::string& key, std::shared_ptr<const ServedContext> c) {
  if (!c) return;
  const uint64_t bytes = c->resident_bytes();
  std::lock_guard<std::mutex> lock(mu_);
  insert(Entry{"c:" + key, std::move(c), nullptr, bytes});
}

std::shared_ptr<const std::vector<uint8_t>> ContextCache::profile(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  const Entry* e = find("p:" + key);
  return e ? e->profile : nullptr;
}

void ContextCache::put_profile(const std::string& key, std::shared_ptr<const std::vector<uint8_t>> p) {
  if (!p) return;
  const uint64_t bytes = p->size();
  std::lock_guard<std::mutex> lock(mu_);
  insert(Entry{"p:" + key, nullptr, std::move(p), bytes});
}

CacheStats ContextCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  CacheStats s = st_;
  s.entries = lru_.size();
  return s;
}

std::shared_ptr<const ServedContext> CachingSource::context(const std::string& id) {
  if (auto c = cache_->context(prefix_ + id)) return c;
  auto c = source_->context(id);
  cache_->put_context(prefix_ + id, c);
  return c;
}

std::shared_ptr<const std::vector<uint8_t>> CachingSource::shared_profile(const std::string& hash) {
  if (auto p = cache_->profile(prefix_ + hash)) return p;
  auto bytes = source_->profile_bytes(hash);
  if (!bytes) return nullptr;
  auto p = std::make_shared<const std::vector<uint8_t>>(std::move(*bytes));
  cache_->put_profile(prefix_ + hash, p);
  return p;
}

std::optional<std::vector<uint8_t>> CachingSource::profile_bytes(const std::string& hash) {
  auto p = shared_profile(hash);
  if (!p) return std::nullopt;
  return *p;
}

}  // namespace kvstream::streamer
