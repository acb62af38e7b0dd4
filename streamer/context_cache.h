// The sender's shared cache of parsed contexts and profile bytes, bounded in bytes (least recently
// used first out), and CachingSource, a ContextSource decorator that serves through it.
//
// Contract: thread-safe. A value larger than the whole capacity is not kept. Sizes are what the
// values hold (ServedContext::resident_bytes(), a profile's byte count). Cached values are
// immutable and shared: an evicted value stays alive while a connection still uses it.
// CachingSource caches what its source returns (contexts by id, profiles by hash) under a key
// prefix (the tenant), so tenants sharing the cache never see each other's entries; a missing
// context or profile, or a load that throws, is not cached.
#pragma once
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "streamer/context_source.h"

namespace kvstream::streamer {

struct CacheStats {
  uint64_t hits = 0, misses = 0, bytes = 0, entries = 0, evictions = 0;
};

class ContextCache {
 public:
  explicit ContextCache(uint64_t capacity_bytes) : capacity_(capacity_bytes) {}
  std::shared_ptr<const ServedContext> context(const std::string& key);
  void put_context(const std::string& key, std::shared_ptr<const ServedContext> c);
  std::shared_ptr<const std::vector<uint8_t>> profile(const std::string& key);
  void put_profile(const std::string& key, std::shared_ptr<const std::vector<uint8_t>> p);
  uint64_t capacity() const { return capacity_; }
  CacheStats stats() const;

 private:
  struct Entry {
    std::string key;
    std::shared_ptr<const ServedContext> ctx;
    std::shared_ptr<const std::vector<uint8_t>> profile;
    uint64_t bytes = 0;
  };
  Entry* find(const std::string& key);  // moves it to the front; caller holds mu_
  void insert(Entry e);                 // caller holds mu_
  uint64_t capacity_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // most recent first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  CacheStats st_;
};

class CachingSource final : public ContextSource {
 public:
  CachingSource(std::shared_ptr<ContextSource> source, std::shared_ptr<ContextCache> cache, std::string prefix)
      : source_(std::move(source)), cache_(std::move(cache)), prefix_(std::move(prefix) + "/") {}
  std::shared_ptr<const ServedContext> context(const std::string& id) override;
  std::optional<std::vector<uint8_t>> profile_bytes(const std::string& hash_hex) override;
  // The cached bytes themselves (no copy), or nullptr.
  std::shared_ptr<const std::vector<uint8_t>> shared_profile(const std::string& hash_hex);

 private:
  std::shared_ptr<ContextSource> source_;
  std::shared_ptr<ContextCache> cache_;
  std::string prefix_;
};

}  // namespace kvstream::streamer
