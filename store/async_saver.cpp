#include "store/async_saver.h"

#include <stdexcept>

#include "codec/rope.h"

namespace kvstream::store {

PrefixKey AsyncSaver::save(KvCache kv, std::optional<PrefixKey> replaces) {
  kv.validate();
  if (kv.num_tokens() == 0) throw std::invalid_argument("AsyncSaver::save: empty cache");
  rope_remove_from_keys(kv, 0);  // no-op for pre-RoPE caches
  const PrefixKey key = store_.hasher().key_of(kv.tokens);
  queue_.push([this, kv = std::move(kv), replaces] { store_.put(kv.tokens, codec_.encode(kv), replaces); });
  return key;
}

}  // namespace kvstream::store
