// Read-only prefix index of a store directory (see store_index.h).
#include "store/store_index.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <set>

#include "kvstream/error.h"
#include "store/record.h"

namespace kvstream::store {

namespace fs = std::filesystem;

namespace {

// The key a record file is named by, or nullopt for any other file.
std::optional<PrefixKey> record_name_key(const std::string& name) {
  const std::string suffix = kRecordSuffix;
  if (name.size() != 32 + suffix.size() || name.compare(32, suffix.size(), suffix) != 0) return std::nullopt;
  try {
    const PrefixKey k = PrefixKey::from_hex(name.substr(0, 32));
    if (k.hex() == name.substr(0, 32)) return k;
  } catch (const std::invalid_argument&) {
  }
  return std::nullopt;
}

// The tokens of a valid record of `key` at `path`, or nullopt (unreadable, corrupt header, another key).
std::optional<std::vector<int32_t>> read_tokens(const fs::path& path, const PrefixKey& key, const PrefixHasher& h) {
  std::error_code ec;
  const uint64_t size = fs::file_size(path, ec);
  if (ec) return std::nullopt;
  std::ifstream f(path, std::ios::binary);
  std::array<uint8_t, kRecordHeaderBytes> head{};
  if (!f.read(reinterpret_cast<char*>(head.data()), std::streamsize(head.size()))) return std::nullopt;
  RecordHeader rh;
  try {
    rh = parse_record_header(head, size);  // bounds n_tokens by the file size before allocating
  } catch (const CorruptRecord&) {
    return std::nullopt;
  }
  if (rh.key != key) return std::nullopt;
  std::vector<int32_t> tokens(rh.n_tokens);
  if (!f.read(reinterpret_cast<char*>(tokens.data()), std::streamsize(4ull * rh.n_tokens))) return std::nullopt;
  if (h.key_of(tokens) != key) return std::nullopt;  // another model's or chunk size's record
  return tokens;
}

}  // namespace

StoreIndex::StoreIndex(std::string dir, const PrefixHasher& hasher) : dir_(std::move(dir)), hasher_(hasher) {}

void StoreIndex::refresh() {
  std::error_code ec;
  if (!fs::is_directory(dir_, ec)) throw kvstream::Error(ErrorCode::kNotFound, "no store directory " + dir_);
  std::set<PrefixKey> present;
  fs::directory_iterator it(dir_, ec);
  if (ec) throw kvstream::Error(ErrorCode::kIo, "cannot list store directory " + dir_ + ": " + ec.message());
  for (const auto& e : it) {
    const auto key = record_name_key(e.path().filename().string());
    if (!key) continue;
    present.insert(*key);
    if (entries_.count(*key)) continue;
    if (auto tokens = read_tokens(e.path(), *key, hasher_)) {
      Entry en;
      en.chain = hasher_.chain(*tokens);
      en.tokens = std::move(*tokens);
      add(*key, std::move(en));
    }
  }
  std::vector<PrefixKey> gone;
  for (const auto& [k, e] : entries_)
    if (!present.count(k)) gone.push_back(k);
  for (const auto& k : gone) remove(k);
}

void StoreIndex::add(const PrefixKey& key, Entry e) {
  for (const auto& c : e.chain) by_chain_[c].push_back(key);
  entries_.emplace(key, std::move(e));
}

void StoreIndex::remove(const PrefixKey& key) {
  const auto it = entries_.find(key);
  for (const auto& c : it->second.chain) {
    auto& v = by_chain_[c];
    v.erase(std::remove(v.begin(), v.end(), key), v.end());
    if (v.empty()) by_chain_.erase(c);
  }
  entries_.erase(it);
}

std::optional<IndexMatch> StoreIndex::longest_prefix(std::span<const int32_t> tokens) const {
  // The query's chain from its longest key down: the first chunk key any entry shares bounds the
  // match from below; among the entries sharing it, compare tokens.
  const auto chain = hasher_.chain(tokens);
  for (size_t i = chain.size(); i-- > 0;) {
    const auto ix = by_chain_.find(chain[i]);
    if (ix == by_chain_.end()) continue;
    std::optional<IndexMatch> best;
    for (const auto& k : ix->second) {
      const auto& et = entries_.at(k).tokens;
      const size_t n = std::min(et.size(), tokens.size());
      const size_t cp = size_t(std::mismatch(et.begin(), et.begin() + long(n), tokens.begin()).first - et.begin());
      if (cp > 0 && (!best || cp > best->matched_tokens || (cp == best->matched_tokens && k < best->key)))
        best = IndexMatch{k, cp, et.size()};
    }
    if (best) return best;
  }
  return std::nullopt;
}

}  // namespace kvstream::store
