// kvstream/lookup.h — how many leading tokens of a token sequence a kvstream store holds (public
// API): the scheduler-side question of an inference engine's KV connector ("how many prefix
// tokens can be loaded instead of prefilled?"), answered without touching the store.
//
// Keys are chunk-chained: the store keys a context by hashing its tokens chunk by chunk (chunk i's
// key hashes chunk i-1's key and chunk i's tokens, the first from a root naming the model and the
// chunk size), so every stored context sharing the query's first (i+1) * chunk_tokens tokens shares
// its chunk-i key. longest_prefix() walks the query's chain from its end to find the stored
// context with the longest common prefix, then compares tokens (a hash collision costs a miss,
// never a wrong answer).
//
// Contract:
// - Side-effect free: a Lookup only reads. It never writes, deletes, promotes or counts anything
//   in the store (a store's eviction policy does not see lookups), and reads each entry's header
//   and tokens only (not the payload, so a corrupt payload is found by the fetch, which verifies
//   it and fails with kUnknownContext / kCorrupt: the engine then prefills).
// - The directory is the disk tier of a kvstream store (what `kvstream send --store DIR` serves,
//   what put() and `kvstream recv --save-back` write). It sees the entries that are files in it: a
//   sender with a store memory tier moves the entries it promotes out of the directory (serve with
//   `--store-mem-bytes 0`, kvstream::Server's default, for exact lookups; see server.h). Entries
//   made for another model or another
//   chunk size are not visible (their keys differ). The index follows the directory: a call sees
//   entries whose files were complete (renamed into place) before it started.
// - Without the store's secret (LookupOptions::store_secret_file) a Lookup sees no entry of a
//   keyed store: nobody can compute the key of a prefix from its text without it.
// - Thread-safe. Throws kvstream::Error: kNotFound (not a directory), kInvalidArgument (empty
//   model name, chunk_tokens == 0), kIo (a directory that cannot be listed).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kvstream {

struct LookupResult {
  uint64_t matched_tokens = 0;  // leading tokens of the query the store holds (0: none)
  std::string context;          // the stored context holding them (its id for FetchOptions::context)
  uint64_t stored_tokens = 0;   // tokens that context holds (>= matched_tokens)
};

struct LookupOptions {
  std::string store_dir;
  std::string model_name;       // the model the store's keys were made for (the profile's model name)
  uint32_t chunk_tokens = 64;   // the store's key chunk
  // A store behind an authenticating sender (docs/PROTOCOL.md, "Authentication, tenants and TLS"):
  // keys are HMACs under tenant T's key secret, derived from the deployment secret in
  // store_secret_file (one line of hex, mode 0600), and T's entries live in store_dir/T. Both
  // empty: the public key over store_dir itself (an insecure sender's store).
  std::string tenant;
  std::string store_secret_file;
};

class Lookup {
 public:
  explicit Lookup(LookupOptions opt);
  ~Lookup();
  Lookup(const Lookup&) = delete;
  Lookup& operator=(const Lookup&) = delete;

  LookupResult longest_prefix(const int32_t* tokens, size_t n) const;
  LookupResult longest_prefix(const std::vector<int32_t>& tokens) const {
    return longest_prefix(tokens.data(), tokens.size());
  }
  size_t entries() const;  // stored contexts visible now

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvstream
