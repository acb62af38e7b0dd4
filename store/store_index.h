// StoreIndex: a read-only index of a store directory's disk tier (its <key>.kvrec records), for
// longest-prefix lookups that leave the store untouched (kvstream::Lookup, an engine scheduler's
// "how many tokens do you hold" question).
//
// Contract: refresh() lists the directory and reads the fixed header and the tokens of each record
// it has not seen (never the payload): a record is indexed when its header is valid, its sizes add
// up to the file size, its name is its key and the key is the hasher's key of its tokens (so other
// models' or other chunk sizes' records are invisible); records that disappeared are dropped.
// Nothing is written, removed or counted. longest_prefix() gives the indexed record sharing the
// longest token prefix with the query, comparing tokens (a hash collision is a miss), ties broken
// by the lower key. The payload is not verified here: the fetch of the entry verifies it.
// Thread-compatible (kvstream::Lookup serialises calls). Throws kvstream::Error kNotFound when the
// directory does not exist, kIo when it cannot be listed.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "store/key.h"

namespace kvstream::store {

struct IndexMatch {
  PrefixKey key;
  size_t matched_tokens = 0;
  size_t stored_tokens = 0;
};

class StoreIndex {
 public:
  StoreIndex(std::string dir, const PrefixHasher& hasher);
  void refresh();
  std::optional<IndexMatch> longest_prefix(std::span<const int32_t> tokens) const;
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::vector<int32_t> tokens;
    std::vector<PrefixKey> chain;
  };
  void add(const PrefixKey& key, Entry e);
  void remove(const PrefixKey& key);

  std::string dir_;
  PrefixHasher hasher_;
  std::map<PrefixKey, Entry> entries_;
  std::unordered_map<PrefixKey, std::vector<PrefixKey>, PrefixKeyHash> by_chain_;  // chain key -> entries
};

}  // namespace kvstream::store
