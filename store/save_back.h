// Save-back: the receiver hands the KV cache it assembled back to a KV store (AttentionStore's
// asynchronous saving, for `kvstream recv --save-back DIR`), so that a sender serving that store
// (`kvstream send --store DIR`) can serve it to the next request.
//
// Contract: save_back() is called after the fetch completed, so nothing of it is on the TTFT
// path. It converts the cache's keys to pre-RoPE (the store holds pre-RoPE keys), queues it on an
// AsyncSaver (encoding with every level of the profile's default ladder plus text, 64-token
// chunks by default) and waits until the entry is written durably to the store's disk tier
// (temp file, fsync, rename). The entry's id is its prefix key (hex). What is saved is what the
// receiver holds: chunks fetched at a lossy level are re-encoded from their decoded values.
// Throws std::invalid_argument for an empty cache or a cache of another shape than the profile's,
// kvstream::Error kResourceExhausted when the store cannot keep the entry (larger than the disk
// tier) and kIo when encoding or writing it failed.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "codec/kv_cache.h"
#include "codec/profile.h"
#include "store/key.h"

namespace kvstream::store {

struct SaveBackOptions {
  std::string dir;                    // store directory (its disk tier)
  uint64_t disk_bytes = 1ull << 30;   // disk tier capacity
  uint32_t chunk_tokens = 64;         // container chunk and prefix-key chunk
  std::vector<uint8_t> secret;        // the store's key secret (tenant_store_config); empty = public
};

struct SaveBackResult {
  PrefixKey key;
  size_t tokens = 0;
  uint64_t stored_bytes = 0;  // the entry's size in the disk tier
  double seconds = 0;         // encode + durable write
};

SaveBackResult save_back(KvCache kv, const codec::Profile& profile, const SaveBackOptions& opt);

class RedisTier;
// The same save-back into the Redis tier (`kvstream recv --save-back redis://...`): the same entry
// and key, written with its profile (so that any sender serving the tier has it), every write
// acknowledged by the tier's replicas (WAIT) before this returns. Throws as save_back() does, and
// kvstream::Error(kUnavailable) when the cluster cannot take the entry.
SaveBackResult save_back_redis(KvCache kv, const codec::Profile& profile, RedisTier& tier, uint32_t chunk_tokens = 64);

}  // namespace kvstream::store
