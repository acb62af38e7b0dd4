// A receiving node's in-memory profiles (see profile_cache.h).
#include "streamer/profile_cache.h"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "streamer/context_source.h"

namespace kvstream::streamer {

namespace fs = std::filesystem;

ProfileCache::ProfileCache(std::string dir) : dir_(std::move(dir)) {
  std::error_code ec;
  if (dir_.empty() || !fs::is_directory(dir_, ec)) return;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    if (e.path().extension() != ".kvprofile") continue;
    const std::string h = e.path().stem().string();
    try {
      auto p = std::make_shared<const codec::Profile>(codec::load_profile(e.path().string()));
      if (hash_hex(p->hash()) != h) continue;  // a bad cached file is ignored and fetched again
      entries_[h] = Entry{p, DecodePipeline::build_tables(*p)};
    } catch (const std::exception&) {
    }
  }
}

std::optional<ProfileCache::Entry> ProfileCache::find(const std::string& hash) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = entries_.find(hash);
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

ProfileCache::Entry ProfileCache::add(const std::string& hash, codec::Profile profile, const std::vector<uint8_t>& bytes) {
  Entry e{std::make_shared<const codec::Profile>(std::move(profile)), {}};
  if (!dir_.empty()) {
    static std::atomic<unsigned> counter{0};
    std::error_code ec;
    fs::create_directories(dir_, ec);
    const fs::path final_path = fs::path(dir_) / (hash + ".kvprofile");
    const fs::path tmp = fs::path(dir_) / (hash + ".kvprofile.tmp" + std::to_string(::getpid()) + "." + std::to_string(counter++));
    bool ok = false;
    {
      std::ofstream f(tmp, std::ios::binary);
      f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
      ok = bool(f);
    }
    if (ok) fs::rename(tmp, final_path, ec);
    else fs::remove(tmp, ec);
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, fresh] = entries_.emplace(hash, e);
  return it->second;
}

void ProfileCache::build_tables(const std::string& hash) {
  std::shared_ptr<const codec::Profile> p;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = entries_.find(hash);
    if (it == entries_.end() || !it->second.tables.empty()) return;
    p = it->second.profile;
  }
  auto tables = DecodePipeline::build_tables(*p);  // outside the lock: it takes a while
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = entries_.find(hash); it != entries_.end() && it->second.tables.empty()) it->second.tables = std::move(tables);
}

}  // namespace kvstream::streamer
