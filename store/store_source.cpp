// The sender's view of the KV store (see store_source.h).
#include "store/store_source.h"

#include <stdexcept>

#include "codec/container.h"

namespace kvstream::store {

namespace {
StoreConfig with_domain(StoreConfig cfg, streamer::ContextDir& dir) {
  if (!cfg.domain.empty()) return cfg;
  const auto names = dir.model_names();
  if (names.size() != 1)
    throw std::invalid_argument("serving a store: " + dir.dir() + " has profiles of " + std::to_string(names.size()) +
                                " models; name the store's model");
  cfg.domain = names.front();
  return cfg;
}
}  // namespace

StoreContextSource::StoreContextSource(StoreConfig cfg, std::shared_ptr<streamer::ContextDir> fallback,
                                       uint64_t parse_cache_bytes)
    : fallback_(std::move(fallback)), parsed_(std::make_shared<streamer::ContextCache>(parse_cache_bytes)) {
  if (!fallback_) throw std::invalid_argument("StoreContextSource: a fallback directory is required (profiles)");
  store_ = std::make_unique<TieredStore>(with_domain(std::move(cfg), *fallback_));
}

StoreContextSource::~StoreContextSource() {
  try {
    store_->demote_all();
  } catch (const std::exception&) {
    // a failed write loses only that memory entry; nothing to report from a destructor
  }
}

bool StoreContextSource::is_key_id(const std::string& id) {
  try {
    return PrefixKey::from_hex(id).hex() == id;
  } catch (const std::invalid_argument&) {
    return false;
  }
}

std::shared_ptr<const streamer::ServedContext> StoreContextSource::context(const std::string& id) {
  if (!is_key_id(id)) {
    if (auto c = parsed_->context("dir/" + id)) return c;
    auto c = fallback_->context(id);
    parsed_->put_context("dir/" + id, c);
    return c;
  }
  const PrefixKey key = PrefixKey::from_hex(id);
  auto fetched = store_->get(key);
  // An entry saved into the directory by another process since the store was opened.
  if (!fetched && store_->adopt(key)) fetched = store_->get(key);
  if (!fetched) return nullptr;  // evicted, never stored, or dropped as corrupt
  // A key's content never changes: a parsed copy is as good as a fresh parse of the record.
  if (auto c = parsed_->context("key/" + id)) return c;
  const auto& payload = fetched->record->payload;
  codec::ContainerReader reader = [&] {
    try {
      return codec::ContainerReader::parse(std::vector<uint8_t>(payload.begin(), payload.end()));
    } catch (const std::exception& e) {
      throw std::runtime_error("store entry " + id + " is not a servable container: " + e.what());
    }
  }();
  const uint64_t profile_size = fallback_->profile_size(streamer::hash_hex(reader.info().profile_hash));
  auto c = streamer::make_served_context(id, std::move(reader), profile_size);
  parsed_->put_context("key/" + id, c);
  return c;
}

StoreConfig tenant_store_config(StoreConfig base, const std::string& tenant, std::span<const uint8_t> deployment_secret) {
  if (!tenant.empty()) base.dir += "/" + tenant;
  base.secret = tenant_secret(deployment_secret, tenant);
  return base;
}

std::optional<std::vector<uint8_t>> StoreContextSource::profile_bytes(const std::string& hash_hex) {
  return fallback_->profile_bytes(hash_hex);
}

}  // namespace kvstream::store
