// TieredStore: AttentionStore's hierarchical store of encoded contexts, with a memory tier and a
// disk tier (real files in a directory), each bounded in bytes, keyed by chunk-chained prefix keys.
//
// Contract:
// - Tiers are exclusive: an entry lives in exactly one tier. New entries enter memory; memory
//   overflow demotes policy-chosen victims to disk; disk overflow drops victims. Neither tier's
//   byte use (Record::stored_bytes of its entries) ever exceeds its capacity, not even for an
//   instant. An entry larger than a tier skips it.
// - get(tokens) returns the stored entry sharing the longest verified token prefix with `tokens`
//   (matched_tokens = that prefix; the tokens are compared, so a hash collision is a miss). A disk
//   hit reads and verifies the file (CRC-32C, sizes, key == hash of tokens) and promotes the entry
//   to memory when the policy lets it in. A corrupt or unreadable file is deleted and reported as a
//   miss: corrupt data is never returned.
// - Disk writes are crash-safe (write_file_atomic through the Env: temp file, fsync, rename, fsync
//   dir). Opening a store on an existing directory deletes leftover *.tmp files and adopts every
//   valid record (up to the disk capacity); corrupt records are deleted, files of other models
//   (key mismatch) and unrelated files are left alone.
// - Thread-safe: any method may be called from any thread. Metadata is guarded by one mutex;
//   disk reads for get()/prefetch() happen outside it. Returned records are immutable and shared.
// - IoError from a demotion write drops that entry (counted in io_errors); other exceptions
//   (bad arguments, SimulatedCrash) propagate.
// - With a lower tier (cfg.lower, e.g. Redis: store/lower_tier.h), put() writes through to it and
//   get() falls back to it on a local miss; a shared hit (tier Shared) is kept locally like a new
//   entry, where the policy lets it in. Its failures are counted (shared_errors), never thrown.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "store/env.h"
#include "store/key.h"
#include "store/lower_tier.h"
#include "store/policy.h"
#include "store/record.h"

namespace kvstream::store {

struct StoreConfig {
  std::string dir;                   // disk tier directory (created if missing)
  uint64_t mem_bytes = 64ull << 20;  // memory tier capacity
  uint64_t disk_bytes = 1ull << 30;  // disk tier capacity
  PolicyKind policy = PolicyKind::Lru;
  int chunk_tokens = 64;             // prefix-key chunk size
  std::string domain;                // model name: part of every key
  std::vector<uint8_t> secret;       // key secret (store/key.h: tenant_secret); empty = public
  Env* env = nullptr;                // nullptr: default_env()
  bool fsync = true;                 // fsync temp file and directory on every disk write
  bool drop_prefixes = true;         // put() removes stored entries whose tokens it extends
  std::shared_ptr<LowerTier> lower;  // a shared tier below disk (write-through, read on a miss)
};

struct StoreStats {
  uint64_t mem_used = 0, disk_used = 0;
  size_t mem_entries = 0, disk_entries = 0;
  uint64_t lookups = 0, hits_mem = 0, hits_disk = 0, misses = 0;
  uint64_t bytes_read_mem = 0, bytes_read_disk = 0;  // by get()
  uint64_t prefetched = 0, bytes_prefetched = 0;     // disk -> memory by prefetch()
  uint64_t puts = 0, bytes_written_disk = 0, demotions = 0, promotions = 0, dropped = 0;
  uint64_t corrupt_dropped = 0, io_errors = 0, recovered = 0, temp_files_removed = 0;
  uint64_t adopted = 0;  // by adopt(), after open
  uint64_t hits_shared = 0, bytes_read_shared = 0, shared_puts = 0, shared_errors = 0;  // lower tier
  uint64_t peak_mem_used = 0, peak_disk_used = 0;
};

struct Match {  // metadata answer of match(): nothing is read
  PrefixKey key;
  size_t matched_tokens = 0;
  size_t stored_tokens = 0;
  Tier tier = Tier::Memory;
  uint64_t bytes = 0;
};

struct Fetched {
  RecordPtr record;
  size_t matched_tokens = 0;  // leading tokens shared by the request and record->tokens
  Tier tier = Tier::Memory;   // where it was found
  uint64_t bytes = 0;         // bytes read from that tier
};

class TieredStore {
 public:
  explicit TieredStore(StoreConfig cfg);
  TieredStore(const TieredStore&) = delete;
  TieredStore& operator=(const TieredStore&) = delete;

  const StoreConfig& config() const { return cfg_; }
  const PrefixHasher& hasher() const { return hasher_; }
  std::string path_of(const PrefixKey& k) const;  // the disk tier file of k

  std::optional<Match> match(std::span<const int32_t> tokens) const;
  std::optional<Fetched> get(std::span<const int32_t> tokens);
  std::optional<Fetched> get(const PrefixKey& key);
  // Stores (tokens, payload) under hasher().key_of(tokens) in memory (demoting as needed);
  // `replaces` is erased and counted as this entry's predecessor. Returns the key.
  // tokens must be non-empty (std::invalid_argument).
  PrefixKey put(std::vector<int32_t> tokens, std::vector<uint8_t> payload,
                std::optional<PrefixKey> replaces = std::nullopt);
  bool erase(const PrefixKey& key);
  // Adopts the disk tier file of `key` written by another process into this store's directory
  // (e.g. a receiver's save-back while a sender serves the directory): verified like the files
  // adopted at open (a corrupt one is deleted), then added to the disk tier, making room by the
  // policy. Returns whether the store now holds `key`.
  bool adopt(const PrefixKey& key);
  // Moves every memory entry to the disk tier (as far as the disk policy makes room), so that a
  // process that stops keeps them: tiers are exclusive, a memory entry has no file. Returns how
  // many are now on disk.
  size_t demote_all();
  std::optional<Tier> where(const PrefixKey& key) const;
  std::vector<PrefixKey> keys(Tier tier) const;

  // Scheduler hints: the keys of queued requests in queue order. Sets the policy's eviction
  // window and the prefetch window (see prefetch_window()).
  void set_lookahead(std::vector<PrefixKey> upcoming);
  // memory capacity / average entry size, and (memory + disk) / average entry size, in entries.
  size_t prefetch_window() const;
  size_t eviction_window() const;
  // Promotes disk entries among the first prefetch_window() distinct look-ahead keys to memory
  // (nearest first); returns how many moved. Runs on the caller's thread (see Prefetcher).
  size_t prefetch();

  StoreStats stats() const;

 private:
  struct Entry {
    PrefixKey key;
    std::vector<int32_t> tokens;
    std::vector<PrefixKey> chain;
    uint64_t bytes = 0;
    Tier tier = Tier::Memory;
    RecordPtr rec;  // set while in memory
  };

  void recover();
  Entry entry_for(const Record& r) const;
  void place_new(Entry e, RecordPtr rec);  // a new entry into memory (or disk if memory refuses)
  std::optional<Fetched> get_shared(std::span<const int32_t> tokens, const PrefixKey* key);
  bool adopt_locked(const PrefixKey& named, bool make_room);
  std::optional<Match> match_locked(std::span<const int32_t> tokens) const;
  std::optional<Fetched> fetch(std::unique_lock<std::mutex>& lock, const Match& m, bool count);
  RecordPtr read_disk(const PrefixKey& key, uint64_t bytes);  // nullptr if corrupt/unreadable
  void add_entry(Entry e);
  void remove_entry(const PrefixKey& key);  // from whichever tier, file included
  // Makes room in memory for `incoming`; false when the policy refuses. Never touches `pinned`.
  bool make_room_mem(const PrefixKey& incoming, uint64_t bytes, const PrefixKey* pinned);
  bool make_room_disk(const PrefixKey& incoming, uint64_t bytes, const PrefixKey* pinned);
  // Moves an entry that is in memory to disk (or drops it if disk refuses).
  void demote(const PrefixKey& key, const PrefixKey* pinned);
  // Writes e (whose record is in memory) to disk; false (entry dropped) on refusal or IoError.
  bool place_on_disk(Entry& e, const PrefixKey* pinned);
  void place_in_memory(Entry& e, RecordPtr rec);
  void move_disk_to_memory(const PrefixKey& key, uint64_t bytes, RecordPtr rec);
  std::vector<PrefixKey> residents(Tier t, const PrefixKey* pinned) const;
  double avg_entry_bytes() const;
  void bump_peaks();

  StoreConfig cfg_;
  Env& env_;
  PrefixHasher hasher_;
  mutable std::mutex mu_;
  std::unique_ptr<EvictionPolicy> policy_;
  std::unordered_map<PrefixKey, Entry, PrefixKeyHash> entries_;
  std::unordered_map<PrefixKey, std::vector<PrefixKey>, PrefixKeyHash> index_;  // chain key -> entries
  std::unordered_set<PrefixKey, PrefixKeyHash> in_mem_, on_disk_;
  std::vector<PrefixKey> lookahead_;
  mutable StoreStats st_;
};

}  // namespace kvstream::store
