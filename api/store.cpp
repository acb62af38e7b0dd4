// Profile and put(): the save-back path from caller buffers (see include/kvstream/store.h).
#include "kvstream/store.h"

#include <cmath>
#include <filesystem>

#include "api/errors.h"
#include "api/security.h"
#include "api/rows.h"
#include "codec/profile.h"
#include "store/save_back.h"
#include "streamer/context_source.h"

namespace kvstream {

struct Profile::Impl {
  codec::Profile p;
  std::string hash;
};

Profile Profile::load(const std::string& path) {
  return api::guarded([&] {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) throw Error(ErrorCode::kNotFound, "no profile file " + path);
    auto impl = std::make_shared<Impl>();
    try {
      impl->p = codec::load_profile(path);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {  // the file is there: what fails is its content
      throw Error(ErrorCode::kCorrupt, e.what());
    }
    impl->hash = streamer::hash_hex(impl->p.hash());
    return Profile(std::move(impl));
  });
}

const std::string& Profile::model_name() const { return impl_->p.model_name; }
KvShape Profile::shape() const { return impl_->p.shape; }
std::string Profile::hash() const { return impl_->hash; }
std::vector<std::string> Profile::level_names() const {
  std::vector<std::string> names;
  for (const auto& l : impl_->p.levels) names.push_back(l.name);
  return names;
}

PutResult put(const Profile& profile, const KvLayout& src, const std::vector<int32_t>& tokens, const PutOptions& opt) {
  return api::guarded([&] {
    const codec::Profile& p = profile.impl().p;
    src.validate();
    if (src.shape != p.shape)
      throw Error(ErrorCode::kInvalidArgument, "put: the layout's shape differs from the profile's model " + p.model_name);
    if (tokens.empty()) throw Error(ErrorCode::kInvalidArgument, "put: no tokens");
    if (opt.store_dir.empty()) throw Error(ErrorCode::kInvalidArgument, "put: no store directory");
    KvCache kv = api::from_layout(src, tokens.size(), p.rope_theta);
    kv.model_name = p.model_name;
    kv.tokens = tokens;
    for (int l = 0; l < kv.shape.n_layers; ++l)
      for (const auto* t : {&kv.k[size_t(l)], &kv.v[size_t(l)]})
        for (float x : *t)
          if (!std::isfinite(x)) throw Error(ErrorCode::kInvalidArgument, "put: layer " + std::to_string(l) + " holds a value that is not finite");
    store::SaveBackOptions so;
    auto ts = api::tenant_store(opt.store_dir, opt.tenant, opt.store_secret_file);
    so.dir = std::move(ts.dir);
    so.secret = std::move(ts.secret);
    so.disk_bytes = opt.disk_bytes;
    so.chunk_tokens = opt.chunk_tokens;
    const auto r = store::save_back(std::move(kv), p, so);
    return PutResult{r.key.hex(), r.tokens, r.stored_bytes, r.seconds};
  });
}

}  // namespace kvstream
