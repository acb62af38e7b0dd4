// Save-back into a store directory (see save_back.h).
#include "store/save_back.h"

#include <chrono>
#include <stdexcept>

#include "kvstream/error.h"
#include "store/async_saver.h"
#include "store/context_codec.h"
#include "store/tiered_store.h"

namespace kvstream::store {

SaveBackResult save_back(KvCache kv, const codec::Profile& profile, const SaveBackOptions& opt) {
  if (kv.num_tokens() == 0) throw std::invalid_argument("save-back: the cache is empty");
  if (!(kv.shape == profile.shape))
    throw std::invalid_argument("save-back: the cache's shape differs from the profile's model");
  const auto t0 = std::chrono::steady_clock::now();
  StoreConfig sc;
  sc.dir = opt.dir;
  sc.mem_bytes = 0;  // straight to the disk tier: durable when this returns
  sc.disk_bytes = opt.disk_bytes;
  sc.chunk_tokens = int(opt.chunk_tokens);
  sc.domain = kv.model_name;
  sc.secret = opt.secret;
  TieredStore store(sc);
  const auto codec = make_container_codec(profile, opt.chunk_tokens);
  AsyncSaver saver(store, *codec);
  SaveBackResult r;
  r.tokens = kv.num_tokens();
  const std::vector<int32_t> tokens = kv.tokens;
  r.key = saver.save(std::move(kv));
  saver.flush();
  if (saver.stats().failed > 0) throw kvstream::Error(ErrorCode::kIo, "save-back: encoding or writing the entry into " + opt.dir + " failed");
  if (!store.where(r.key))
    throw kvstream::Error(ErrorCode::kResourceExhausted, "save-back: the store " + opt.dir + " could not keep the entry (larger than its disk tier?)");
  if (const auto m = store.match(tokens)) r.stored_bytes = m->bytes;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace kvstream::store
