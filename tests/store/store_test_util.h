// Helpers shared by the store tests: a self-deleting temp directory and deterministic payloads.
#pragma once
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "store/key.h"

namespace kvstream::store::testing {

struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "kvstore-test-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

// Tokens [base, base+n) style conversation: deterministic ids in the 512 vocabulary.
inline std::vector<int32_t> conversation(uint32_t seed, size_t n) {
  std::vector<int32_t> t(n);
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (auto& v : t) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    v = static_cast<int32_t>(3 + x % 509);
  }
  return t;
}

// A payload that is a function of the tokens, so a reader can check it got the right bytes.
inline std::vector<uint8_t> payload_for(const std::vector<int32_t>& tokens, size_t bytes) {
  std::vector<uint8_t> p(bytes);
  uint64_t x = 1469598103934665603ull;
  for (int32_t t : tokens) x = (x ^ static_cast<uint32_t>(t)) * 1099511628211ull;
  for (auto& b : p) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    b = static_cast<uint8_t>(x);
  }
  return p;
}

inline uint64_t dir_bytes(const std::string& dir, const std::string& suffix = ".kvrec") {
  uint64_t total = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const auto name = e.path().filename().string();
    if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      total += e.file_size();
  }
  return total;
}

inline size_t count_files(const std::string& dir, const std::string& suffix) {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const auto name = e.path().filename().string();
    if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) ++n;
  }
  return n;
}

}  // namespace kvstream::store::testing
