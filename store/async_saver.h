// AsyncSaver: the receiver side's "save back" (AttentionStore asynchronous saving): hand over a
// turn's KV cache and return at once; a SaveQueue worker encodes it (ContextCodec: every level +
// text) and puts it in the TieredStore under the prefix key of its tokens.
//
// Contract: save() converts post-RoPE keys to pre-RoPE (positions 0..) before queuing, so the store
// always holds pre-RoPE keys; it returns the key the entry will have. The queue's bound and
// overflow policy (block = back-pressure, drop-oldest = newest saves win) are the SaveQueue's.
// flush() waits for every accepted save. The store and codec must outlive the saver.
#pragma once
#include <optional>

#include "store/context_codec.h"
#include "store/save_queue.h"
#include "store/tiered_store.h"

namespace kvstream::store {

class AsyncSaver {
 public:
  AsyncSaver(TieredStore& store, const ContextCodec& codec, size_t queue_capacity = 8,
             Overflow overflow = Overflow::Block)
      : store_(store), codec_(codec), queue_(queue_capacity, overflow, 1) {}
  PrefixKey save(KvCache kv, std::optional<PrefixKey> replaces = std::nullopt);
  void flush() { queue_.flush(); }
  SaveQueueStats stats() const { return queue_.stats(); }

 private:
  TieredStore& store_;
  const ContextCodec& codec_;
  SaveQueue queue_;
};

}  // namespace kvstream::store
