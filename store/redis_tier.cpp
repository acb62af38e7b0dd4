// The Redis Cluster tier (see redis_tier.h).
#include "store/redis_tier.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "codec/container.h"
#include "codec/profile.h"
#include "streamer/context_source.h"

namespace kvstream::store {

using redis::ContextMeta;
using redis::Reply;
using redis::Request;
using redis::ValueId;
using redis::ValueKind;

namespace {

constexpr std::string_view kScheme = "redis://";

kvstream::Error invalid(const std::string& what) { return kvstream::Error(kvstream::ErrorCode::kInvalidArgument, what); }

bool valid_tenant(std::string_view t) {
  if (t.empty() || t.size() > 64) return false;
  return std::all_of(t.begin(), t.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

double parse_number(std::string_view v, const std::string& name) {
  double d = 0;
  const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), d);
  if (ec != std::errc() || p != v.data() + v.size() || !(d >= 0) || !std::isfinite(d))
    throw invalid("Redis URI: " + name + "=" + std::string(v) + " is not a non-negative number");
  return d;
}

std::string key_bytes(const PrefixKey& k) {
  std::string s(16, '\0');
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char(k.hi >> (8 * i)), s[size_t(8 + i)] = char(k.lo >> (8 * i));
  return s;
}

PrefixKey key_from_bytes(std::span<const uint8_t> b) {
  PrefixKey k;
  for (int i = 0; i < 8; ++i) k.hi |= uint64_t(b[size_t(i)]) << (8 * i), k.lo |= uint64_t(b[size_t(8 + i)]) << (8 * i);
  return k;
}

std::span<const uint8_t> as_bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace

bool is_redis_uri(std::string_view s) { return s.substr(0, kScheme.size()) == kScheme; }

RedisTierOptions parse_redis_uri(std::string_view uri) {
  if (!is_redis_uri(uri)) throw invalid("'" + std::string(uri) + "' is not a redis:// URI");
  RedisTierOptions o;
  std::string_view rest = uri.substr(kScheme.size());
  std::string_view query;
  if (const size_t q = rest.find('?'); q != std::string_view::npos) query = rest.substr(q + 1), rest = rest.substr(0, q);
  if (const size_t slash = rest.find('/'); slash != std::string_view::npos) {
    o.tenant = std::string(rest.substr(slash + 1));
    rest = rest.substr(0, slash);
    if (!valid_tenant(o.tenant)) throw invalid("Redis URI: tenant '" + o.tenant + "' is not [A-Za-z0-9._-]{1,64}");
  }
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    o.cluster.seeds.push_back(redis::parse_endpoint(rest.substr(0, comma)));
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
  }
  if (o.cluster.seeds.empty()) throw invalid("Redis URI '" + std::string(uri) + "' names no HOST:PORT");
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view kv = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    const size_t eq = kv.find('=');
    if (eq == std::string_view::npos) throw invalid("Redis URI: '" + std::string(kv) + "' is not NAME=VALUE");
    const std::string name(kv.substr(0, eq));
    const std::string_view v = kv.substr(eq + 1);
    if (name == "layout") o.layout = redis::parse_layout(v);
    else if (name == "wait") o.wait_replicas = int(parse_number(v, name));
    else if (name == "pool") o.cluster.pool_size = size_t(parse_number(v, name));
    else if (name == "read_ms") o.read_budget_s = parse_number(v, name) / 1e3;
    else if (name == "write_ms") o.write_budget_s = parse_number(v, name) / 1e3;
    else throw invalid("Redis URI: unknown parameter '" + name + "' (layout, wait, pool, read_ms, write_ms)");
  }
  return o;
}

RedisTier::RedisTier(RedisTierOptions opt) : opt_(std::move(opt)) {
  if (!valid_tenant(opt_.tenant)) throw invalid("Redis tier: tenant '" + opt_.tenant + "' is not [A-Za-z0-9._-]{1,64}");
  cluster_ = std::make_unique<redis::Cluster>(opt_.cluster);
}

PrefixHasher RedisTier::hasher(int chunk_tokens, std::string_view domain) const {
  return PrefixHasher(chunk_tokens, domain, opt_.key_secret);
}

RedisTierOptions tenant_redis_options(RedisTierOptions base, const std::string& tenant,
                                      std::span<const uint8_t> deployment_secret) {
  if (!tenant.empty()) base.tenant = tenant;
  base.key_secret = tenant_secret(deployment_secret, tenant);  // as tenant_store_config() does
  return base;
}

std::string RedisTier::meta_key(const PrefixKey& k) const { return "kvs:{" + opt_.tenant + ":" + k.hex() + "}:meta"; }

std::string RedisTier::blob_key(const PrefixKey& k, redis::Layout layout, uint32_t chunk, uint32_t level) const {
  const std::string c = std::to_string(chunk), l = std::to_string(level);
  if (layout == redis::Layout::kContext) return "kvs:{" + opt_.tenant + ":" + k.hex() + "}:" + c + ":" + l;
  return "kvs:{" + opt_.tenant + ":" + k.hex() + ":" + c + "}:" + l;
}

std::string RedisTier::index_key(const PrefixKey& p) const { return "kvs:{" + opt_.tenant + ":idx:" + p.hex() + "}"; }

std::string RedisTier::profile_key(const std::string& h) const { return "kvs:{" + opt_.tenant + ":profile:" + h + "}"; }

redis::RunOptions RedisTier::read_options(double budget_s) const {
  redis::RunOptions ro;
  ro.budget_s = budget_s >= 0 ? budget_s : opt_.read_budget_s;
  ro.fail_fast = true;  // a read that cannot be answered now is a miss or a text fallback, not a wait
  return ro;
}

void RedisTier::unavailable(const std::string& what, const std::string& why) {
  ++n_.unavailable;
  throw kvstream::Error(kvstream::ErrorCode::kUnavailable,
                        "Redis Cluster at " + cluster_->seeds_str() + ": " + what + ": " + why);
}

// A value that fails its checks is deleted (best effort), so that it is not read again and the
// next put of its context writes a good one. Stale values (another generation) are left alone.
void RedisTier::drop_corrupt(const std::string& key) {
  Request q{{"DEL", key}, false, 1};
  (void)cluster_->run(std::span<const Request>(&q, 1), read_options());
}

void RedisTier::write(std::vector<Request>& batch) {
  if (batch.empty()) return;
  redis::RunOptions ro;
  ro.budget_s = opt_.write_budget_s;
  ro.wait_replicas = opt_.wait_replicas;
  ro.wait_timeout_s = opt_.wait_timeout_s;
  const auto replies = cluster_->run(batch, ro);
  for (size_t i = 0; i < replies.size(); ++i) {
    const Reply& r = replies[i];
    if (r.ok()) continue;
    if (r.type == Reply::Type::kError && r.str.rfind("OOM", 0) == 0)
      throw kvstream::Error(kvstream::ErrorCode::kResourceExhausted,
                            "Redis Cluster at " + cluster_->seeds_str() + ": writing " + batch[i].argv[1] + ": " + r.str);
    unavailable("writing " + batch[i].argv[1], r.str);
  }
  n_.values_written += batch.size();
  for (const auto& q : batch) n_.bytes_written += q.argv.back().size();
  batch.clear();
}

uint64_t RedisTier::put_context(const PrefixKey& key, std::span<const PrefixKey> chain, std::span<const uint8_t> container) {
  if (chain.empty() || chain.back() != key) throw invalid("Redis tier: the prefix chain must end with the context's key");
  codec::ContainerReader reader = [&] {
    try {
      return codec::ContainerReader::parse(std::vector<uint8_t>(container.begin(), container.end()));
    } catch (const std::exception& e) {
      throw invalid(std::string("Redis tier stores .kvs containers only: ") + e.what());
    }
  }();
  const auto& info = reader.info();
  ContextMeta m;
  m.layout = opt_.layout;
  m.generation = codec::fnv1a64(container) | 1;  // never 0 (0 = any generation)
  m.ladder_levels = uint32_t(info.ladder.size());
  for (size_t l = 0; l < info.ladder.size(); ++l)
    if (info.ladder[l].method == codec::Method::Text) m.text_level = int(l);
  m.manifest = streamer::manifest_from_container(key.hex(), reader, 0);
  m.manifest.context_id.clear();
  uint64_t blob_total = 0;
  for (uint32_t c = 0; c < info.num_chunks; ++c)
    for (uint32_t l = 0; l < m.ladder_levels; ++l) blob_total += reader.blob_size(c, int(l));
  m.container_head.assign(container.begin(), container.end() - std::ptrdiff_t(blob_total));

  std::vector<Request> batch;
  size_t batch_bytes = 0;
  uint64_t stored = 0;
  auto add = [&](std::string k, std::string v) {
    stored += v.size();
    batch_bytes += v.size();
    batch.push_back(Request{{"SET", std::move(k), std::move(v)}, false, 1});
    if (batch_bytes >= opt_.batch_bytes) write(batch), batch_bytes = 0;
  };
  for (uint32_t c = 0; c < info.num_chunks; ++c) {
    for (uint32_t l = 0; l < m.ladder_levels; ++l) {
      const auto b = reader.blob(c, int(l));  // CRC-checked
      if (int(l) == m.text_level) {
        m.text_blobs.emplace_back(b.begin(), b.end());
        continue;
      }
      add(blob_key(key, m.layout, c, l), redis::encode_value({ValueKind::kBlob, key, m.generation, c, l}, b));
    }
    if (m.text_level < 0) m.text_blobs.emplace_back();
  }
  const std::string target = key_bytes(key);
  for (const auto& p : chain)
    add(index_key(p), redis::encode_value({ValueKind::kIndex, p, 0, 0, 0}, as_bytes(target)));
  write(batch);
  batch_bytes = 0;
  m.stored_bytes = stored;
  m.stored_bytes += redis::kValueOverhead + encode_meta(m).size();
  add(meta_key(key), redis::encode_value({ValueKind::kMeta, key, m.generation, 0, 0}, encode_meta(m)));
  write(batch);
  ++n_.puts;
  return m.stored_bytes;
}

void RedisTier::put_profile(const std::string& hash_hex, std::span<const uint8_t> bytes) {
  if (streamer::hash_hex(codec::fnv1a64(bytes)) != hash_hex) throw invalid("Redis tier: profile bytes do not match hash " + hash_hex);
  std::vector<Request> batch{Request{{"SET", profile_key(hash_hex), redis::encode_value({ValueKind::kProfile, {}, 0, 0, 0}, bytes)}, false, 1}};
  write(batch);
}

std::shared_ptr<const ContextMeta> RedisTier::meta(const PrefixKey& key) {
  ++n_.meta_reads;
  Request q{{"GET", meta_key(key)}, true, 1};
  // Not fail-fast: a session cannot start without its meta, so a read that finds the master down
  // and no replica in the slot map (mid-promotion) retries, refreshing the map, for the budget.
  auto ro = read_options();
  ro.fail_fast = false;
  const auto r = cluster_->run(std::span<const Request>(&q, 1), ro);
  if (r[0].type == Reply::Type::kUnavailable || r[0].type == Reply::Type::kError) unavailable("reading " + q.argv[1], r[0].str);
  if (r[0].type != Reply::Type::kString) {
    ++n_.meta_misses;
    return nullptr;
  }
  n_.bytes_read += r[0].str.size();
  try {
    ValueId got;
    const auto payload = redis::decode_value(r[0].str, {ValueKind::kMeta, key, 0, 0, 0}, &got);
    auto m = std::make_shared<ContextMeta>(redis::decode_meta(payload));
    m->generation = got.generation;
    return m;
  } catch (const redis::CorruptValue&) {
    ++n_.corrupt;
    ++n_.meta_misses;
    drop_corrupt(q.argv[1]);
    return nullptr;
  }
}

std::vector<BlobRead> RedisTier::blobs(const PrefixKey& key, const ContextMeta& m,
                                       std::span<const std::pair<uint32_t, int>> which, double budget_s) {
  std::vector<BlobRead> out(which.size());
  std::vector<Request> batch;
  std::vector<size_t> slot_of;  // batch index -> out index
  for (size_t i = 0; i < which.size(); ++i) {
    const auto [c, l] = which[i];
    if (c >= m.manifest.chunks.size() || l < 0 || uint32_t(l) >= m.ladder_levels)
      throw invalid("Redis tier: no chunk " + std::to_string(c) + " level " + std::to_string(l) + " in " + key.hex());
    if (l == m.text_level) {
      out[i].status = BlobRead::Status::kOk;
      out[i].bytes = m.text_blobs[c];
      continue;
    }
    batch.push_back(Request{{"GET", blob_key(key, m.layout, c, uint32_t(l))}, true, 1});
    slot_of.push_back(i);
  }
  n_.blob_reads += batch.size();
  const auto replies = batch.empty() ? std::vector<Reply>{} : cluster_->run(batch, read_options(budget_s));
  for (size_t j = 0; j < replies.size(); ++j) {
    BlobRead& b = out[slot_of[j]];
    const auto [c, l] = which[slot_of[j]];
    const Reply& r = replies[j];
    if (r.type == Reply::Type::kUnavailable || r.type == Reply::Type::kError) {
      b.status = BlobRead::Status::kUnavailable;
      b.why = r.str;
      ++n_.unavailable;
      continue;
    }
    if (r.type != Reply::Type::kString) {
      b.status = BlobRead::Status::kMissing;
      b.why = "no value " + batch[j].argv[1] + " (evicted?)";
      ++n_.blob_misses;
      continue;
    }
    n_.bytes_read += r.str.size();
    try {
      const auto payload = redis::decode_value(r.str, {ValueKind::kBlob, key, m.generation, c, uint32_t(l)});
      const int mi = streamer::manifest_level_index(m.manifest, uint16_t(l));
      if (mi < 0 || payload.size() != m.manifest.chunks[c].level_bytes[size_t(mi)])
        throw redis::CorruptValue("Redis blob value: its size disagrees with the manifest");
      b.bytes.assign(payload.begin(), payload.end());
      b.status = BlobRead::Status::kOk;
    } catch (const redis::StaleValue& e) {
      b.status = BlobRead::Status::kMissing;
      b.why = batch[j].argv[1] + ": " + e.what();
      ++n_.blob_misses;
    } catch (const redis::CorruptValue& e) {
      b.status = BlobRead::Status::kCorrupt;
      b.why = batch[j].argv[1] + ": " + e.what();
      ++n_.corrupt;
      drop_corrupt(batch[j].argv[1]);
    }
  }
  return out;
}

std::optional<std::vector<uint8_t>> RedisTier::container(const PrefixKey& key, const ContextMeta& m) {
  std::vector<std::pair<uint32_t, int>> all;
  for (uint32_t c = 0; c < m.manifest.chunks.size(); ++c)
    for (uint32_t l = 0; l < m.ladder_levels; ++l) all.emplace_back(c, int(l));
  auto parts = blobs(key, m, all);
  std::vector<uint8_t> bytes = m.container_head;
  for (auto& p : parts) {
    if (p.status == BlobRead::Status::kUnavailable) unavailable("reading " + key.hex(), p.why);
    if (p.status != BlobRead::Status::kOk) return std::nullopt;
    bytes.insert(bytes.end(), p.bytes.begin(), p.bytes.end());
  }
  try {
    (void)codec::ContainerReader::parse(bytes);  // head and blobs fit together
  } catch (const std::exception&) {
    ++n_.corrupt;
    return std::nullopt;
  }
  return bytes;
}

std::optional<std::vector<uint8_t>> RedisTier::profile(const std::string& hash_hex) {
  Request q{{"GET", profile_key(hash_hex)}, true, 1};
  const auto r = cluster_->run(std::span<const Request>(&q, 1), read_options());
  if (r[0].type == Reply::Type::kUnavailable || r[0].type == Reply::Type::kError) unavailable("reading " + q.argv[1], r[0].str);
  if (r[0].type != Reply::Type::kString) return std::nullopt;
  try {
    const auto p = redis::decode_value(r[0].str, {ValueKind::kProfile, {}, 0, 0, 0});
    if (streamer::hash_hex(codec::fnv1a64(p)) != hash_hex) throw redis::CorruptValue("Redis profile value: hash mismatch");
    return std::vector<uint8_t>(p.begin(), p.end());
  } catch (const redis::CorruptValue&) {
    ++n_.corrupt;
    return std::nullopt;
  }
}

std::optional<RedisTier::MatchResult> RedisTier::match(std::span<const int32_t> tokens, std::span<const PrefixKey> chain) {
  if (chain.empty()) return std::nullopt;
  std::vector<Request> batch;
  for (const auto& p : chain) batch.push_back(Request{{"GET", index_key(p)}, true, 1});
  const auto replies = cluster_->run(batch, read_options());
  size_t answered = 0, tried = 0;
  std::string why;
  for (size_t i = chain.size(); i-- > 0 && tried < 3;) {
    const Reply& r = replies[i];
    if (r.type == Reply::Type::kUnavailable || r.type == Reply::Type::kError) {
      why = r.str;
      continue;
    }
    ++answered;
    if (r.type != Reply::Type::kString) continue;
    PrefixKey target;
    try {
      const auto p = redis::decode_value(r.str, {ValueKind::kIndex, chain[i], 0, 0, 0});
      if (p.size() != 16) throw redis::CorruptValue("Redis index value: not a key");
      target = key_from_bytes(p);
    } catch (const redis::CorruptValue&) {
      ++n_.corrupt;
      drop_corrupt(batch[i].argv[1]);
      continue;
    }
    ++tried;
    auto m = meta(target);
    if (!m) continue;
    const auto& ids = m->manifest.token_ids;
    const size_t n = std::min(ids.size(), tokens.size());
    const size_t cp = size_t(std::mismatch(ids.begin(), ids.begin() + std::ptrdiff_t(n), tokens.begin()).first - ids.begin());
    if (cp > 0) return MatchResult{target, std::move(m), cp};
  }
  if (answered == 0 && !why.empty()) unavailable("looking up a prefix", why);
  return std::nullopt;
}

bool RedisTier::erase(const PrefixKey& key) {
  const auto m = meta(key);
  if (!m) return false;
  std::vector<Request> batch{Request{{"DEL", meta_key(key)}, false, 1}};
  write(batch);
  for (uint32_t c = 0; c < m->manifest.chunks.size(); ++c)
    for (uint32_t l = 0; l < m->ladder_levels; ++l)
      if (int(l) != m->text_level) batch.push_back(Request{{"DEL", blob_key(key, m->layout, c, l)}, false, 1});
  write(batch);
  ++n_.erased;
  return true;
}

bool RedisTier::put(const Record& rec, std::span<const PrefixKey> chain, const std::optional<PrefixKey>& replaces) {
  try {
    put_context(rec.key, chain, rec.payload);
  } catch (const kvstream::Error& e) {
    if (e.code() == kvstream::ErrorCode::kInvalidArgument) return false;
    throw;
  }
  if (replaces && *replaces != rec.key) erase(*replaces);
  return true;
}

std::optional<Record> RedisTier::record_of(const PrefixKey& key, const ContextMeta& m) {
  auto bytes = container(key, m);
  if (!bytes) return std::nullopt;
  Record r;
  r.key = key;
  r.tokens = m.manifest.token_ids;
  r.payload = std::move(*bytes);
  return r;
}

std::optional<Record> RedisTier::get(std::span<const int32_t> tokens, std::span<const PrefixKey> chain) {
  const auto hit = match(tokens, chain);
  if (!hit) return std::nullopt;
  return record_of(hit->key, *hit->meta);
}

std::optional<Record> RedisTier::get(const PrefixKey& key) {
  const auto m = meta(key);
  if (!m) return std::nullopt;
  return record_of(key, *m);
}

RedisTierStats RedisTier::stats() const {
  RedisTierStats s;
  s.puts = n_.puts, s.values_written = n_.values_written, s.bytes_written = n_.bytes_written, s.erased = n_.erased;
  s.meta_reads = n_.meta_reads, s.meta_misses = n_.meta_misses, s.blob_reads = n_.blob_reads;
  s.blob_misses = n_.blob_misses, s.corrupt = n_.corrupt, s.unavailable = n_.unavailable, s.bytes_read = n_.bytes_read;
  return s;
}

}  // namespace kvstream::store
