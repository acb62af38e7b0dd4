// The receiver's memory of link estimates (see link_memory.h).
#include "streamer/link_memory.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <unistd.h>

#include <nlohmann/json.hpp>

namespace kvstream::streamer {

namespace {
constexpr size_t kMaxFileBytes = 1 << 20;  // a memory file is a few hundred bytes per sender

nlohmann::json read_json(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec || size > kMaxFileBytes) return nlohmann::json::object();
  std::ifstream f(path);
  auto j = nlohmann::json::parse(f, nullptr, false);
  return j.is_object() ? j : nlohmann::json::object();
}
}  // namespace

LinkMemory load_link_memory(const std::string& path, const std::string& sender, double now_unix_s) {
  LinkMemory m;
  if (path.empty()) return m;
  const auto j = read_json(path);
  const auto links = j.find("links");
  if (links == j.end() || !links->is_object()) return m;
  const auto e = links->find(sender);
  if (e == links->end() || !e->is_object()) return m;
  const auto num = [&](const char* k) {
    const auto v = e->find(k);
    return v != e->end() && v->is_number() ? v->get<double>() : NAN;
  };
  const double mu = num("mu"), sigma = num("sigma"), at = num("unix_s");
  // ln(bytes/s) in [ln 1, ln 1e13]; a spread in [0, 10]; not stored in the future
  if (!(mu >= 0 && mu <= 30) || !(sigma >= 0 && sigma <= 10) || !(at <= now_unix_s + 1)) return m;
  m.valid = true;
  m.mu = mu;
  m.sigma = sigma;
  m.age_s = std::max(0.0, now_unix_s - at);
  return m;
}

void store_link_memory(const std::string& path, const std::string& sender, const LinkMemory& m, double now_unix_s) {
  if (path.empty() || !m.valid) return;
  auto j = read_json(path);
  if (!j.contains("links") || !j["links"].is_object()) j["links"] = nlohmann::json::object();
  j["links"][sender] = {{"mu", m.mu}, {"sigma", m.sigma}, {"unix_s", now_unix_s}};
  const std::string tmp = path + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream f(tmp);
    if (!(f << j.dump(1) << "\n")) throw std::runtime_error("cannot write the link memory " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw std::runtime_error("cannot write the link memory " + path + ": " + ec.message());
}

}  // namespace kvstream::streamer
