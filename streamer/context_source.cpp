// Container / profile adapter (see context_source.h).
#include "streamer/context_source.h"

#include <algorithm>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace kvstream::streamer {

namespace fs = std::filesystem;

std::string hash_hex(uint64_t h) {
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(h));
  return b;
}

Manifest manifest_from_container(const std::string& id, const codec::ContainerReader& r, uint64_t profile_bytes) {
  const auto& info = r.info();
  Manifest m;
  m.context_id = id;
  m.profile_hash = hash_hex(info.profile_hash);
  m.profile_bytes = profile_bytes;
  m.num_tokens = uint32_t(info.num_tokens);
  int text = -1;
  for (size_t l = 0; l < info.ladder.size(); ++l) {
    const auto& L = info.ladder[l];
    if (L.method == codec::Method::Text) {
      text = int(l);
      continue;
    }
    ManifestLevel ml;
    ml.id = uint16_t(l);
    ml.name = L.name.substr(0, 32);
    ml.agreement = L.quality.contexts > 0 ? std::clamp(L.quality.greedy_agreement, 0.0, 1.0) : 0.0;
    ml.ppl_delta_pct = L.quality.contexts > 0 ? L.quality.ppl_delta_pct : 0.0;
    m.levels.push_back(ml);
  }
  if (m.levels.empty()) throw std::runtime_error("container of '" + id + "' has no KV levels");
  for (uint32_t c = 0; c < info.num_chunks; ++c) {
    ManifestChunk mc;
    mc.token_begin = uint32_t(info.chunk_begin(c));
    mc.num_tokens = uint32_t(info.chunk_end(c) - info.chunk_begin(c));
    mc.text_bytes = text >= 0 ? r.blob_size(c, text) : 0;
    for (const auto& ml : m.levels) mc.level_bytes.push_back(r.blob_size(c, ml.id));
    m.chunks.push_back(std::move(mc));
  }
  // The context's token ids (from each chunk's text blob), so that a receiver knows every
  // chunk's tokens whatever level it fetches.
  if (m.num_tokens > kMaxManifestTokens)
    throw std::runtime_error("context '" + id + "' has " + std::to_string(m.num_tokens) +
                             " tokens, more than the protocol's limit of " + std::to_string(kMaxManifestTokens));
  m.token_ids.reserve(m.num_tokens);
  for (uint32_t c = 0; c < info.num_chunks; ++c) {
    const auto ids = r.tokens(c);
    if (ids.size() != m.chunks[c].num_tokens)
      throw std::runtime_error("context '" + id + "': text of chunk " + std::to_string(c) + " has " +
                               std::to_string(ids.size()) + " tokens, expected " + std::to_string(m.chunks[c].num_tokens));
    for (int32_t t : ids) {
      if (t < 0) throw std::runtime_error("context '" + id + "' has a negative token id");
      m.token_ids.push_back(t);
    }
  }
  return m;
}

StreamSpec spec_from_manifest(const Manifest& m) {
  StreamSpec s;
  for (const auto& l : m.levels) s.levels.push_back({l.id, l.name, l.agreement, l.ppl_delta_pct});
  for (const auto& c : m.chunks) {
    ChunkSpec cs;
    cs.tokens = c.num_tokens;
    cs.text_bytes = c.text_bytes;
    for (uint32_t b : c.level_bytes) cs.level_bytes.push_back(b);
    s.chunks.push_back(std::move(cs));
  }
  return s;
}

int ladder_index_of(const ServedContext& c, uint16_t wire_level) {
  if (wire_level == kTextLevel) return c.text_level();
  if (manifest_level_index(c.manifest(), wire_level) < 0) return -1;
  return int(wire_level);
}

ContextDir::ContextDir(std::string dir) : dir_(std::move(dir)) {
  if (!fs::is_directory(dir_)) throw std::runtime_error("not a directory: " + dir_);
  scan_profiles();
}

void ContextDir::scan_profiles() {
  for (const auto& e : fs::directory_iterator(dir_)) {
    if (!e.is_regular_file() || e.path().extension() != ".kvprofile") continue;
    const std::string path = e.path().string();
    bool known = false;
    for (const auto& [h, p] : profiles_) known |= p == path;
    if (known) continue;
    try {
      const auto p = codec::load_profile(path);
      profiles_[hash_hex(p.hash())] = path;
      models_[hash_hex(p.hash())] = p.model_name;
    } catch (const std::exception&) {
      // an unreadable profile is simply not served
    }
  }
}

std::shared_ptr<const ServedContext> ContextDir::context(const std::string& id) {
  if (!valid_context_id(id)) return nullptr;
  const fs::path path = fs::path(dir_) / (id + ".kvs");
  if (!fs::is_regular_file(path)) return nullptr;
  auto reader = codec::ContainerReader::open(path.string());  // outside the lock: it reads and parses
  const std::string h = hash_hex(reader.info().profile_hash);
  uint64_t profile_size = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    profile_size = profile_size_locked(h);
  }
  return make_served_context(id, std::move(reader), profile_size);
}

uint64_t ContextDir::profile_size_locked(const std::string& h) {
  if (profiles_.find(h) == profiles_.end()) scan_profiles();
  std::error_code ec;
  if (auto it = profiles_.find(h); it != profiles_.end()) {
    const auto n = fs::file_size(it->second, ec);
    if (!ec) return n;
  }
  return 0;
}

std::vector<std::string> ContextDir::model_names() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> names;
  for (const auto& [h, name] : models_)
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  return names;
}

uint64_t ContextDir::profile_size(const std::string& h) {
  std::lock_guard<std::mutex> lock(mu_);
  return profile_size_locked(h);
}

uint64_t ServedContext::resident_bytes() const {
  const Manifest& m = manifest();
  return 1024 + 4 * uint64_t(m.token_ids.size()) + uint64_t(m.chunks.size()) * (16 + 4 * m.levels.size());
}

uint64_t ContainerContext::resident_bytes() const {
  uint64_t n = ServedContext::resident_bytes();
  const auto& info = reader_.info();
  for (uint32_t c = 0; c < info.num_chunks; ++c)
    for (size_t l = 0; l < info.ladder.size(); ++l) n += reader_.blob_size(c, int(l));
  return n;
}

std::shared_ptr<const std::vector<uint8_t>> ContainerContext::blob(uint32_t chunk, int ladder_level) const {
  const auto b = reader_.blob(chunk, ladder_level);
  return std::make_shared<const std::vector<uint8_t>>(b.begin(), b.end());
}

std::shared_ptr<const ServedContext> make_served_context(const std::string& id, codec::ContainerReader reader,
                                                         uint64_t profile_bytes) {
  int text_level = -1;
  const auto& info = reader.info();
  for (size_t l = 0; l < info.ladder.size(); ++l)
    if (info.ladder[l].method == codec::Method::Text) text_level = int(l);
  Manifest m = manifest_from_container(id, reader, profile_bytes);
  return std::make_shared<ContainerContext>(id, std::move(reader), std::move(m), text_level);
}

std::optional<std::vector<uint8_t>> ContextDir::profile_bytes(const std::string& h) {
  std::lock_guard<std::mutex> lock(mu_);
  if (profiles_.find(h) == profiles_.end()) scan_profiles();
  auto it = profiles_.find(h);
  if (it == profiles_.end()) return std::nullopt;
  std::ifstream f(it->second, std::ios::binary);
  std::vector<uint8_t> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (!f.good() && !f.eof()) return std::nullopt;
  return b;
}

}  // namespace kvstream::streamer
