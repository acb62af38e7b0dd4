// Server: the sender with a directory source and, optionally, a store source (see
// include/kvstream/server.h).
#include "kvstream/server.h"

#include <filesystem>
#include <map>
#include <mutex>

#include "api/errors.h"
#include "store/store_source.h"
#include "streamer/auth.h"
#include "streamer/context_source.h"
#include "streamer/sender.h"

namespace kvstream {

struct Server::Impl {
  ServerOptions opt;
  store::StoreConfig store_base;           // the store before its tenant (dir empty: no store)
  streamer::Secret store_secret;           // the deployment secret of its keys
  std::shared_ptr<const streamer::Keyring> keys;
  std::mutex mu;
  std::map<std::string, std::shared_ptr<store::StoreContextSource>> stores;  // by tenant ("" insecure)
  std::unique_ptr<streamer::Sender> sender;

  // Tenant T's store source, made on first use (nullptr without a store, or for a tenant the
  // keys file lacks).
  std::shared_ptr<store::StoreContextSource> store_of(const std::string& tenant) {
    if (store_base.dir.empty() || (keys && !keys->find(tenant))) return nullptr;
    std::lock_guard lock(mu);
    auto& s = stores[tenant];
    if (!s) {
      const std::string dir = tenant.empty() ? opt.dir : (std::filesystem::path(opt.dir) / tenant).string();
      s = std::make_shared<store::StoreContextSource>(store::tenant_store_config(store_base, tenant, store_secret),
                                                      std::make_shared<streamer::ContextDir>(dir));
    }
    return s;
  }
};

namespace {

streamer::SenderOptions sender_options(const ServerOptions& opt, Server::Impl& impl) {
  if (!opt.keys_file.empty() && opt.insecure) throw Error(ErrorCode::kInvalidArgument, "server: keys_file and insecure exclude each other");
  if (opt.keys_file.empty() && !opt.insecure)
    throw Error(ErrorCode::kAuth, "server: give keys_file (authenticate receivers) or insecure (serve anyone)");
  if (!opt.keys_file.empty() && !opt.store_dir.empty() && opt.store_secret_file.empty())
    throw Error(ErrorCode::kInvalidArgument, "server: a store with keys_file needs store_secret_file (the store keys' secret)");
  if (opt.tls_cert_file.empty() != opt.tls_key_file.empty())
    throw Error(ErrorCode::kInvalidArgument, "server: tls_cert_file and tls_key_file go together");
  streamer::SenderOptions so;
  so.host = opt.host;
  so.port = opt.port;
  so.dir = opt.dir;
  so.idle_timeout_s = opt.idle_timeout_s;
  so.log = opt.log;
  so.insecure = opt.insecure;
  if (!opt.keys_file.empty()) so.keys = impl.keys = std::make_shared<const streamer::Keyring>(streamer::Keyring::load(opt.keys_file));
  if (!opt.tls_cert_file.empty()) so.tls = streamer::TlsServerConfig{opt.tls_cert_file, opt.tls_key_file, ""};
  if (opt.store_dir.empty()) return so;
  impl.store_base.dir = opt.store_dir;
  impl.store_base.mem_bytes = opt.store_mem_bytes;
  impl.store_base.disk_bytes = opt.store_disk_bytes;
  impl.store_base.policy = store::parse_policy(opt.store_policy);
  impl.store_base.domain = opt.model_name;
  impl.store_base.chunk_tokens = int(opt.chunk_tokens);
  if (!opt.store_secret_file.empty()) impl.store_secret = streamer::load_secret_file(opt.store_secret_file);
  if (so.keys) {
    so.tenant_source = [&impl](const std::string& tenant) -> std::shared_ptr<streamer::ContextSource> {
      const auto tdir = std::filesystem::path(impl.opt.dir) / tenant;
      if (!std::filesystem::is_directory(tdir)) return nullptr;
      return impl.store_of(tenant);
    };
  } else {
    so.source = impl.store_of("");
  }
  return so;
}

}  // namespace

Server::Server(ServerOptions opt) : impl_(std::make_unique<Impl>()) {
  api::guarded([&] {
    std::error_code ec;
    if (!std::filesystem::is_directory(opt.dir, ec))
      throw Error(ErrorCode::kNotFound, "server: no context directory '" + opt.dir + "'");
    impl_->opt = opt;  // before the sources: they read it
    impl_->sender = std::make_unique<streamer::Sender>(sender_options(impl_->opt, *impl_));
  });
}

Server::~Server() { stop(); }

void Server::start() {
  api::guarded([&] {
    try {
      impl_->sender->start();
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Error(ErrorCode::kUnavailable, "server: cannot listen on " + impl_->opt.host + ":" +
                                               std::to_string(impl_->opt.port) + ": " + e.what());
    }
  });
}

void Server::stop() {
  if (impl_ && impl_->sender) impl_->sender->stop();
}

uint16_t Server::port() const { return impl_->sender->port(); }

ServerStats Server::stats() const {
  const auto s = impl_->sender->stats();
  return {s.connections, s.active, s.frames_sent, s.bytes_sent, s.errors_sent};
}

LookupResult Server::lookup(const int32_t* tokens, size_t n, const std::string& tenant) const {
  return api::guarded([&] {
    LookupResult r;
    if (impl_->keys && !impl_->keys->find(tenant))
      throw Error(ErrorCode::kInvalidArgument, "server: lookup for tenant '" + tenant + "', who is not in the keys file");
    if (!impl_->keys && !tenant.empty())
      throw Error(ErrorCode::kInvalidArgument, "server: lookup for tenant '" + tenant + "' on a server without keys_file");
    const auto store = impl_->store_of(tenant);
    if (!store || n == 0) return r;
    if (const auto m = store->store().match(std::span<const int32_t>(tokens, n))) {
      r.matched_tokens = m->matched_tokens;
      r.context = m->key.hex();
      r.stored_tokens = m->stored_tokens;
    }
    return r;
  });
}

}  // namespace kvstream
