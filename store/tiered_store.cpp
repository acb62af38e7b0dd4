#include "store/tiered_store.h"

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace kvstream::store {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

size_t common_prefix(std::span<const int32_t> a, std::span<const int32_t> b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

}  // namespace

TieredStore::TieredStore(StoreConfig cfg)
    : cfg_(std::move(cfg)),
      env_(cfg_.env ? *cfg_.env : default_env()),
      hasher_(cfg_.chunk_tokens, cfg_.domain, cfg_.secret),
      policy_(make_policy(cfg_.policy)) {
  if (cfg_.dir.empty()) throw std::invalid_argument("TieredStore: a disk directory is required");
  env_.create_dir(cfg_.dir);
  recover();
}

std::string TieredStore::path_of(const PrefixKey& k) const {
  return cfg_.dir + "/" + k.hex() + kRecordSuffix;
}

void TieredStore::recover() {
  std::lock_guard lock(mu_);
  for (const auto& name : env_.list_dir(cfg_.dir)) {
    const std::string path = cfg_.dir + "/" + name;
    if (ends_with(name, kTempSuffix)) {  // an interrupted write: never renamed, never valid
      if (env_.remove_file(path)) ++st_.temp_files_removed;
      continue;
    }
    if (!ends_with(name, kRecordSuffix) || name.size() != 32 + std::string(kRecordSuffix).size())
      continue;
    PrefixKey named;
    try {
      named = PrefixKey::from_hex(name.substr(0, 32));
    } catch (const std::invalid_argument&) {
      continue;
    }
    if (named.hex() != name.substr(0, 32)) continue;  // not a name this store writes
    if (adopt_locked(named, /*make_room=*/false)) ++st_.recovered;
  }
  bump_peaks();
}

bool TieredStore::adopt(const PrefixKey& key) {
  std::lock_guard lock(mu_);
  if (entries_.count(key)) return true;
  if (!env_.file_exists(path_of(key))) return false;
  const bool ok = adopt_locked(key, /*make_room=*/true);
  if (ok) ++st_.adopted;
  bump_peaks();
  return ok;
}

bool TieredStore::adopt_locked(const PrefixKey& named, bool make_room) {
  const std::string path = path_of(named);
  std::vector<uint8_t> bytes;
  try {
    bytes = env_.read_file(path, cfg_.disk_bytes);
  } catch (const IoError&) {
    ++st_.io_errors;  // missing, unreadable or larger than the whole tier: left alone, not adopted
    return false;
  }
  Record r;
  try {
    r = parse_record(bytes);
  } catch (const CorruptRecord&) {
    env_.remove_file(path);
    ++st_.corrupt_dropped;
    return false;
  }
  if (r.key != named || hasher_.key_of(r.tokens) != r.key) return false;  // another model's record
  if (entries_.count(r.key)) return false;
  const bool fits = st_.disk_used + bytes.size() <= cfg_.disk_bytes ||
                    (make_room && make_room_disk(r.key, bytes.size(), nullptr));
  if (!fits) {
    env_.remove_file(path);
    ++st_.dropped;
    return false;
  }
  Entry e;
  e.key = r.key;
  e.chain = hasher_.chain(r.tokens);
  e.tokens = std::move(r.tokens);
  e.bytes = bytes.size();
  e.tier = Tier::Disk;
  const PrefixKey key = e.key;
  add_entry(std::move(e));
  on_disk_.insert(key);
  st_.disk_used += bytes.size();
  policy_->on_insert(key);
  return true;
}

void TieredStore::add_entry(Entry e) {
  for (const auto& c : e.chain) index_[c].push_back(e.key);
  const PrefixKey key = e.key;
  entries_[key] = std::move(e);
}

void TieredStore::remove_entry(const PrefixKey& key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  Entry& e = it->second;
  if (in_mem_.erase(key)) st_.mem_used -= e.bytes;
  if (on_disk_.erase(key)) {
    st_.disk_used -= e.bytes;
    try {
      env_.remove_file(path_of(key));
    } catch (const IoError&) {
      ++st_.io_errors;
    }
  }
  for (const auto& c : e.chain) {
    auto ix = index_.find(c);
    if (ix == index_.end()) continue;
    auto& v = ix->second;
    v.erase(std::remove(v.begin(), v.end(), key), v.end());
    if (v.empty()) index_.erase(ix);
  }
  entries_.erase(it);
}

std::vector<PrefixKey> TieredStore::residents(Tier t, const PrefixKey* pinned) const {
  const auto& set = t == Tier::Memory ? in_mem_ : on_disk_;
  std::vector<PrefixKey> out;
  out.reserve(set.size());
  for (const auto& k : set)
    if (!pinned || k != *pinned) out.push_back(k);
  std::sort(out.begin(), out.end());  // deterministic order for ties
  return out;
}

bool TieredStore::make_room_disk(const PrefixKey& incoming, uint64_t bytes, const PrefixKey* pinned) {
  if (bytes > cfg_.disk_bytes) return false;
  while (st_.disk_used + bytes > cfg_.disk_bytes) {
    const auto res = residents(Tier::Disk, pinned);
    if (res.empty()) return false;
    const auto v = policy_->victim(res, incoming, Tier::Disk);
    if (!v) return false;
    policy_->on_erase(*v);
    remove_entry(*v);
    ++st_.dropped;
  }
  return true;
}

bool TieredStore::place_on_disk(Entry& e, const PrefixKey* pinned) {
  const PrefixKey key = e.key;
  RecordPtr rec = e.rec;
  auto drop = [&] {
    policy_->on_erase(key);
    remove_entry(key);
    ++st_.dropped;
    return false;
  };
  if (!make_room_disk(key, e.bytes, pinned)) return drop();
  const std::vector<uint8_t> bytes = serialize_record(*rec);
  try {
    write_file_atomic(env_, cfg_.dir, key.hex() + kRecordSuffix, bytes, cfg_.fsync);
  } catch (const IoError&) {
    ++st_.io_errors;
    return drop();
  }
  Entry& again = entries_.at(key);  // make_room_disk never removes `key` itself (not on disk yet)
  again.rec.reset();
  again.tier = Tier::Disk;
  on_disk_.insert(key);
  st_.disk_used += again.bytes;
  st_.bytes_written_disk += bytes.size();
  bump_peaks();
  return true;
}

void TieredStore::place_in_memory(Entry& e, RecordPtr rec) {
  e.rec = std::move(rec);
  e.tier = Tier::Memory;
  in_mem_.insert(e.key);
  st_.mem_used += e.bytes;
  bump_peaks();
}

void TieredStore::demote(const PrefixKey& key, const PrefixKey* pinned) {
  Entry& e = entries_.at(key);
  in_mem_.erase(key);
  st_.mem_used -= e.bytes;
  ++st_.demotions;
  place_on_disk(e, pinned);
}

size_t TieredStore::demote_all() {
  std::lock_guard lock(mu_);
  size_t kept = 0;
  for (const auto& k : residents(Tier::Memory, nullptr)) {
    demote(k, nullptr);
    kept += on_disk_.count(k);
  }
  bump_peaks();
  return kept;
}

// A disk entry whose room in memory is already made moves there; its file goes (an error
// removing it is counted, the record is already read and verified).
void TieredStore::move_disk_to_memory(const PrefixKey& key, uint64_t bytes, RecordPtr rec) {
  Entry& e = entries_.at(key);
  on_disk_.erase(key);
  st_.disk_used -= bytes;
  try {
    env_.remove_file(path_of(key));
  } catch (const IoError&) {
    ++st_.io_errors;
  }
  place_in_memory(e, std::move(rec));
}

bool TieredStore::make_room_mem(const PrefixKey& incoming, uint64_t bytes, const PrefixKey* pinned) {
  if (bytes > cfg_.mem_bytes) return false;
  while (st_.mem_used + bytes > cfg_.mem_bytes) {
    const auto res = residents(Tier::Memory, pinned);
    if (res.empty()) return false;
    const auto v = policy_->victim(res, incoming, Tier::Memory);
    if (!v) return false;
    demote(*v, pinned);
  }
  return true;
}

void TieredStore::bump_peaks() {
  st_.peak_mem_used = std::max(st_.peak_mem_used, st_.mem_used);
  st_.peak_disk_used = std::max(st_.peak_disk_used, st_.disk_used);
  st_.mem_entries = in_mem_.size();
  st_.disk_entries = on_disk_.size();
}

std::optional<Match> TieredStore::match_locked(std::span<const int32_t> tokens) const {
  const auto chain = hasher_.chain(tokens);
  for (size_t i = chain.size(); i-- > 0;) {
    auto ix = index_.find(chain[i]);
    if (ix == index_.end()) continue;
    std::optional<Match> best;
    for (const auto& k : ix->second) {
      const Entry& e = entries_.at(k);
      const size_t cp = common_prefix(e.tokens, tokens);
      if (cp == 0) continue;
      if (!best || cp > best->matched_tokens ||
          (cp == best->matched_tokens && e.tier == Tier::Memory && best->tier == Tier::Disk)) {
        best = Match{k, cp, e.tokens.size(), e.tier, e.bytes};
      }
    }
    if (best) return best;
  }
  return std::nullopt;
}

std::optional<Match> TieredStore::match(std::span<const int32_t> tokens) const {
  std::lock_guard lock(mu_);
  return match_locked(tokens);
}

RecordPtr TieredStore::read_disk(const PrefixKey& key, uint64_t bytes) {
  try {
    std::vector<uint8_t> buf = env_.read_file(path_of(key), bytes);
    if (buf.size() != bytes) return nullptr;  // the size the store wrote is part of the check
    Record r = parse_record(buf, &hasher_);
    if (r.key != key) return nullptr;
    return std::make_shared<const Record>(std::move(r));
  } catch (const IoError&) {
    return nullptr;
  } catch (const CorruptRecord&) {
    return nullptr;
  }
}

std::optional<Fetched> TieredStore::fetch(std::unique_lock<std::mutex>& lock, const Match& m,
                                          bool count) {
  auto it = entries_.find(m.key);
  if (it == entries_.end()) {
    if (count && !cfg_.lower) ++st_.misses;
    return std::nullopt;
  }
  if (in_mem_.count(m.key)) {
    Entry& e = it->second;
    policy_->on_access(m.key);
    if (count) ++st_.hits_mem, st_.bytes_read_mem += e.bytes;
    return Fetched{e.rec, m.matched_tokens, Tier::Memory, e.bytes};
  }
  if (!on_disk_.count(m.key)) {  // being moved by another thread right now
    if (count && !cfg_.lower) ++st_.misses;
    return std::nullopt;
  }
  const PrefixKey key = m.key;
  const uint64_t bytes = it->second.bytes;
  lock.unlock();
  RecordPtr rec = read_disk(key, bytes);
  lock.lock();
  it = entries_.find(key);
  const bool still_on_disk = it != entries_.end() && on_disk_.count(key);
  if (!rec) {
    if (still_on_disk) {  // the file is corrupt or unreadable: drop it, never serve it
      policy_->on_erase(key);
      remove_entry(key);
      ++st_.corrupt_dropped;
      bump_peaks();
    }
    if (count && !cfg_.lower) ++st_.misses;
    return std::nullopt;
  }
  if (count) ++st_.hits_disk, st_.bytes_read_disk += bytes;
  if (still_on_disk) {
    policy_->on_access(key);
    if (make_room_mem(key, bytes, &key)) {
      move_disk_to_memory(key, bytes, rec);
      ++st_.promotions;
    }
    bump_peaks();
  }
  return Fetched{rec, m.matched_tokens, Tier::Disk, bytes};
}

std::optional<Fetched> TieredStore::get(std::span<const int32_t> tokens) {
  std::unique_lock lock(mu_);
  ++st_.lookups;
  const auto m = match_locked(tokens);
  std::optional<Fetched> f;
  if (m) f = fetch(lock, *m, true);
  if (f || !cfg_.lower) {
    if (!m) ++st_.misses;
    return f;
  }
  lock.unlock();
  return get_shared(tokens, nullptr);
}

std::optional<Fetched> TieredStore::get(const PrefixKey& key) {
  std::unique_lock lock(mu_);
  ++st_.lookups;
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    if (!cfg_.lower) {
      ++st_.misses;
      return std::nullopt;
    }
    lock.unlock();
    return get_shared({}, &key);
  }
  const Match m{key, it->second.tokens.size(), it->second.tokens.size(), it->second.tier, it->second.bytes};
  auto f = fetch(lock, m, true);
  if (f || !cfg_.lower) return f;
  lock.unlock();
  return get_shared({}, &key);
}

// A local miss: the lower tier's record (verified: key == hash of its tokens), kept locally.
std::optional<Fetched> TieredStore::get_shared(std::span<const int32_t> tokens, const PrefixKey* key) {
  std::optional<Record> r;
  bool failed = false;
  try {
    r = key ? cfg_.lower->get(*key) : cfg_.lower->get(tokens, hasher_.chain(tokens));
  } catch (const std::exception&) {
    failed = true;  // unreachable or unusable: a miss, counted
  }
  std::lock_guard lock(mu_);
  if (failed) ++st_.shared_errors;
  if (!r || r->tokens.empty() || r->tokens.size() > kMaxRecordTokens || hasher_.key_of(r->tokens) != r->key ||
      (key && r->key != *key)) {
    ++st_.misses;
    return std::nullopt;
  }
  const size_t matched = key ? r->tokens.size() : common_prefix(r->tokens, tokens);
  if (matched == 0) {
    ++st_.misses;
    return std::nullopt;
  }
  auto rec = std::make_shared<const Record>(std::move(*r));
  const uint64_t bytes = rec->stored_bytes();
  ++st_.hits_shared;
  st_.bytes_read_shared += bytes;
  if (!entries_.count(rec->key)) {
    policy_->on_insert(rec->key);
    place_new(entry_for(*rec), rec);
  }
  return Fetched{rec, matched, Tier::Shared, bytes};
}

TieredStore::Entry TieredStore::entry_for(const Record& r) const {
  Entry e;
  e.key = r.key;
  e.chain = hasher_.chain(r.tokens);
  e.tokens = r.tokens;
  e.bytes = r.stored_bytes();
  return e;
}

void TieredStore::place_new(Entry e, RecordPtr rec) {
  const PrefixKey key = e.key;
  add_entry(std::move(e));
  Entry& placed = entries_.at(key);
  placed.rec = rec;
  if (make_room_mem(key, placed.bytes, nullptr)) {
    place_in_memory(placed, rec);
  } else {
    place_on_disk(placed, nullptr);
  }
  bump_peaks();
}

PrefixKey TieredStore::put(std::vector<int32_t> tokens, std::vector<uint8_t> payload,
                           std::optional<PrefixKey> replaces) {
  if (tokens.empty()) throw std::invalid_argument("TieredStore::put: no tokens");
  if (tokens.size() > kMaxRecordTokens) throw std::invalid_argument("TieredStore::put: too many tokens");
  auto rec = std::make_shared<Record>();
  rec->key = hasher_.key_of(tokens);
  rec->payload = std::move(payload);
  rec->tokens = std::move(tokens);
  Entry e = entry_for(*rec);
  const PrefixKey key = e.key;
  std::vector<PrefixKey> chain;
  if (cfg_.lower) chain = e.chain;
  {
    std::lock_guard lock(mu_);
    ++st_.puts;
    // Predecessors: the entry this one explicitly replaces, the same key, and (drop_prefixes)
    // stored entries whose tokens this one extends.
    std::vector<PrefixKey> preds;
    if (replaces && entries_.count(*replaces)) preds.push_back(*replaces);
    if (entries_.count(key)) preds.push_back(key);
    if (cfg_.drop_prefixes) {
      for (const auto& c : e.chain) {
        auto ix = index_.find(c);
        if (ix == index_.end()) continue;
        for (const auto& k : ix->second) {
          const Entry& old = entries_.at(k);
          if (old.tokens.size() <= e.tokens.size() && common_prefix(old.tokens, e.tokens) == old.tokens.size())
            preds.push_back(k);
        }
      }
    }
    // The predecessor whose insertion time this entry inherits: the explicit one, else the longest.
    std::optional<PrefixKey> first;
    for (const auto& p : preds)
      if (!first || (replaces && p == *replaces) ||
          (!(replaces && *first == *replaces) && entries_.at(p).tokens.size() > entries_.at(*first).tokens.size()))
        first = p;
    std::sort(preds.begin(), preds.end());
    preds.erase(std::unique(preds.begin(), preds.end()), preds.end());
    policy_->on_insert(key, first);  // inherits the predecessor's insertion time (FIFO)
    for (const auto& p : preds) {
      remove_entry(p);
      if (p != key) policy_->on_erase(p);
    }
    place_new(std::move(e), rec);
  }
  if (cfg_.lower) {  // write-through, outside the lock
    bool ok = false, failed = false;
    try {
      ok = cfg_.lower->put(*rec, chain, replaces);
    } catch (const std::exception&) {
      failed = true;
    }
    std::lock_guard lock(mu_);
    st_.shared_puts += ok;
    st_.shared_errors += failed;
  }
  return key;
}

bool TieredStore::erase(const PrefixKey& key) {
  std::lock_guard lock(mu_);
  if (!entries_.count(key)) return false;
  policy_->on_erase(key);
  remove_entry(key);
  bump_peaks();
  return true;
}

std::optional<Tier> TieredStore::where(const PrefixKey& key) const {
  std::lock_guard lock(mu_);
  if (in_mem_.count(key)) return Tier::Memory;
  if (on_disk_.count(key)) return Tier::Disk;
  return std::nullopt;
}

std::vector<PrefixKey> TieredStore::keys(Tier tier) const {
  std::lock_guard lock(mu_);
  return residents(tier, nullptr);
}

double TieredStore::avg_entry_bytes() const {
  const size_t n = in_mem_.size() + on_disk_.size();
  return n ? double(st_.mem_used + st_.disk_used) / double(n) : 0.0;
}

size_t TieredStore::prefetch_window() const {
  std::lock_guard lock(mu_);
  const double avg = avg_entry_bytes();
  return avg > 0 ? static_cast<size_t>(double(cfg_.mem_bytes) / avg) : std::numeric_limits<size_t>::max();
}

size_t TieredStore::eviction_window() const {
  std::lock_guard lock(mu_);
  const double avg = avg_entry_bytes();
  return avg > 0 ? static_cast<size_t>(double(cfg_.mem_bytes + cfg_.disk_bytes) / avg)
                 : std::numeric_limits<size_t>::max();
}

void TieredStore::set_lookahead(std::vector<PrefixKey> upcoming) {
  const size_t window = eviction_window();
  std::lock_guard lock(mu_);
  lookahead_ = std::move(upcoming);
  policy_->set_lookahead(lookahead_, window);
}

size_t TieredStore::prefetch() {
  const size_t window = prefetch_window();
  std::unique_lock lock(mu_);
  std::vector<PrefixKey> todo;
  std::unordered_set<PrefixKey, PrefixKeyHash> seen;
  for (const auto& k : lookahead_) {
    if (seen.size() >= window) break;
    if (!seen.insert(k).second) continue;
    if (on_disk_.count(k)) todo.push_back(k);
  }
  size_t moved = 0;
  for (const auto& key : todo) {
    auto it = entries_.find(key);
    if (it == entries_.end() || !on_disk_.count(key)) continue;
    const uint64_t bytes = it->second.bytes;
    lock.unlock();
    RecordPtr rec = read_disk(key, bytes);
    lock.lock();
    it = entries_.find(key);
    if (it == entries_.end() || !on_disk_.count(key)) continue;
    if (!rec) {
      policy_->on_erase(key);
      remove_entry(key);
      ++st_.corrupt_dropped;
      continue;
    }
    if (!make_room_mem(key, bytes, &key)) break;  // memory holds only nearer entries
    move_disk_to_memory(key, bytes, rec);
    ++st_.prefetched;
    st_.bytes_prefetched += bytes;
    ++moved;
  }
  bump_peaks();
  return moved;
}

StoreStats TieredStore::stats() const {
  std::lock_guard lock(mu_);
  return st_;
}

}  // namespace kvstream::store
