// kvstream/store.h — codec profiles and put(): encoding a KV cache from caller buffers and storing
// it in a kvstream store (public API). This is the save-back path of an engine: after a request,
// put() what the engine computed, and the next request's Lookup finds it; a Server serving the
// store (ServerOptions::store_dir) sends it.
//
// A Profile is what the codec learned offline about one model's KV (per-channel means, steps and
// entropy-coder tables for each level of the quality ladder): `kvstream profile` makes one, from
// the reference model or from KV dumps alone (`kvstream profile --kv`).
//
// Contract:
// - Profile::load() throws kvstream::Error: kNotFound (no such file), kIo, kCorrupt (fails its
//   checks).
// - put() reads tokens.size() tokens from `src` (host memory; contiguous rows 0.. or the paged
//   slot of each token; a negative slot is kInvalidArgument here: every token must be given),
//   keys after RoPE unless src.keys_pre_rope. It encodes them with every level of the profile's
//   ladder plus the tokens (64-token chunks), and writes the entry durably (temp file, fsync,
//   rename) into the store directory under the chunk-chained key of its tokens, which it returns
//   as the context id. An entry whose tokens extend a stored one replaces it. It blocks until the
//   entry is durable (call it off the engine's critical path). Throws kvstream::Error:
//   kInvalidArgument (layout, shape other than the profile's, no tokens, values that are not
//   finite), kResourceExhausted (larger than the store's disk capacity), kIo.
// - Thread-safe: concurrent put()s into one directory are safe (each is one atomic file).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kvstream/layout.h"
#include "kvstream/types.h"

namespace kvstream {

class Profile {
 public:
  static Profile load(const std::string& path);
  const std::string& model_name() const;
  KvShape shape() const;
  std::vector<std::string> level_names() const;  // best quality first
  std::string hash() const;                      // 16 lower-case hex digits (what senders name it by)

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  explicit Profile(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

struct PutOptions {
  std::string store_dir;              // a store directory (created if missing)
  uint64_t disk_bytes = 1ull << 30;   // the store's disk tier capacity
  uint32_t chunk_tokens = 64;         // container chunk and key chunk (Lookup's chunk_tokens)
  // Keyed store keys, as LookupOptions: tenant T's entry goes to store_dir/T under a key keyed by
  // T's secret derived from store_secret_file; both empty: the public key, in store_dir.
  std::string tenant;
  std::string store_secret_file;
};

struct PutResult {
  std::string context;       // the entry's id: its key (32 hex digits), for FetchOptions::context
  uint64_t tokens = 0;
  uint64_t stored_bytes = 0; // the entry's size in the store
  double seconds = 0;        // encode + durable write
};

PutResult put(const Profile& profile, const KvLayout& src, const std::vector<int32_t>& tokens,
              const PutOptions& opt);

}  // namespace kvstream
