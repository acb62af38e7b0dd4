// Save-back into the Redis tier (see save_back.h).
#include <chrono>
#include <stdexcept>

#include "codec/rope.h"
#include "store/context_codec.h"
#include "store/redis_tier.h"
#include "store/save_back.h"
#include "streamer/context_source.h"

namespace kvstream::store {

SaveBackResult save_back_redis(KvCache kv, const codec::Profile& profile, RedisTier& tier, uint32_t chunk_tokens) {
  if (kv.num_tokens() == 0) throw std::invalid_argument("save-back: the cache is empty");
  if (!(kv.shape == profile.shape))
    throw std::invalid_argument("save-back: the cache's shape differs from the profile's model");
  const auto t0 = std::chrono::steady_clock::now();
  kv.validate();
  rope_remove_from_keys(kv, 0);  // the store holds pre-RoPE keys (no-op if they already are)
  const auto chain = tier.hasher(int(chunk_tokens), kv.model_name).chain(kv.tokens);
  const auto bytes = make_container_codec(profile, chunk_tokens)->encode(kv);
  const auto profile_bytes = codec::serialize_profile(profile);
  tier.put_profile(streamer::hash_hex(codec::fnv1a64(profile_bytes)), profile_bytes);
  SaveBackResult r;
  r.key = chain.back();
  r.tokens = kv.num_tokens();
  r.stored_bytes = tier.put_context(r.key, chain, bytes);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace kvstream::store
