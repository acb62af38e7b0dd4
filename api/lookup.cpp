// Lookup: a StoreIndex refreshed when the store directory changes (see include/kvstream/lookup.h).
#include "kvstream/lookup.h"

#include <filesystem>
#include <mutex>

#include "api/errors.h"
#include "api/security.h"
#include "store/store_index.h"

namespace kvstream {

struct Lookup::Impl {
  LookupOptions opt;
  std::string dir;  // the tenant's directory (opt.store_dir without a tenant)
  mutable std::mutex mu;
  mutable std::optional<store::StoreIndex> index;
  mutable std::filesystem::file_time_type seen{};  // the directory's mtime at the last refresh

  // Re-reads the directory when an entry was added or removed since the last call (a rename
  // into or out of the directory changes its mtime).
  void refresh() const {
    std::error_code ec;
    const auto t = std::filesystem::last_write_time(dir, ec);
    if (!ec && t == seen) return;
    index->refresh();
    if (!ec) seen = t;
  }
};

Lookup::Lookup(LookupOptions opt) : impl_(std::make_unique<Impl>()) {
  api::guarded([&] {
    if (opt.model_name.empty()) throw Error(ErrorCode::kInvalidArgument, "lookup: the model name is empty");
    if (opt.chunk_tokens == 0) throw Error(ErrorCode::kInvalidArgument, "lookup: chunk_tokens must be positive");
    auto ts = api::tenant_store(opt.store_dir, opt.tenant, opt.store_secret_file);
    impl_->index.emplace(ts.dir, store::PrefixHasher(int(opt.chunk_tokens), opt.model_name, ts.secret));
    impl_->dir = std::move(ts.dir);
    impl_->opt = std::move(opt);
    impl_->seen = std::filesystem::file_time_type::min();
    impl_->refresh();
  });
}

Lookup::~Lookup() = default;

LookupResult Lookup::longest_prefix(const int32_t* tokens, size_t n) const {
  return api::guarded([&] {
    std::lock_guard lock(impl_->mu);
    impl_->refresh();
    LookupResult r;
    if (n == 0) return r;
    if (const auto m = impl_->index->longest_prefix(std::span<const int32_t>(tokens, n))) {
      r.matched_tokens = m->matched_tokens;
      r.context = m->key.hex();
      r.stored_tokens = m->stored_tokens;
    }
    return r;
  });
}

size_t Lookup::entries() const {
  return api::guarded([&] {
    std::lock_guard lock(impl_->mu);
    impl_->refresh();
    return impl_->index->size();
  });
}

}  // namespace kvstream
