// Server: the sender with a directory source and, optionally, a store source (see
// include/kvstream/server.h).
#include "kvstream/server.h"

#include <filesystem>
#include <mutex>

#include "api/errors.h"
#include "store/store_source.h"
#include "streamer/context_source.h"
#include "streamer/sender.h"

namespace kvstream {

struct Server::Impl {
  ServerOptions opt;
  std::shared_ptr<store::StoreContextSource> store;  // null without a store
  std::unique_ptr<streamer::Sender> sender;
};

Server::Server(ServerOptions opt) : impl_(std::make_unique<Impl>()) {
  api::guarded([&] {
    std::error_code ec;
    if (!std::filesystem::is_directory(opt.dir, ec))
      throw Error(ErrorCode::kNotFound, "server: no context directory '" + opt.dir + "'");
    streamer::SenderOptions so;
    so.host = opt.host;
    so.port = opt.port;
    so.dir = opt.dir;
    so.idle_timeout_s = opt.idle_timeout_s;
    so.log = opt.log;
    if (!opt.store_dir.empty()) {
      store::StoreConfig sc;
      sc.dir = opt.store_dir;
      sc.mem_bytes = opt.store_mem_bytes;
      sc.disk_bytes = opt.store_disk_bytes;
      sc.policy = store::parse_policy(opt.store_policy);
      sc.domain = opt.model_name;
      sc.chunk_tokens = int(opt.chunk_tokens);
      impl_->store = std::make_shared<store::StoreContextSource>(sc, std::make_shared<streamer::ContextDir>(opt.dir));
      so.source = impl_->store;
    }
    impl_->sender = std::make_unique<streamer::Sender>(std::move(so));
    impl_->opt = std::move(opt);
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

LookupResult Server::lookup(const int32_t* tokens, size_t n) const {
  return api::guarded([&] {
    LookupResult r;
    if (!impl_->store || n == 0) return r;
    if (const auto m = impl_->store->store().match(std::span<const int32_t>(tokens, n))) {
      r.matched_tokens = m->matched_tokens;
      r.context = m->key.hex();
      r.stored_tokens = m->stored_tokens;
    }
    return r;
  });
}

}  // namespace kvstream
