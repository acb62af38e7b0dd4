// Where tests find the real data: data/ in the repository (KVSTREAM_DATA overrides it).
#pragma once
#include <cstdlib>
#include <string>

namespace kvstream::testing {

inline std::string data_dir() {
  if (const char* env = std::getenv("KVSTREAM_DATA")) return env;
  return KVSTREAM_DATA_DIR;
}
inline std::string model_path() { return data_dir() + "/models/stories260K/stories260K.bin"; }
inline std::string tokenizer_path() { return data_dir() + "/models/stories260K/tok512.bin"; }
inline std::string golden_path() { return data_dir() + "/models/stories260K/golden.json"; }
inline std::string text_path() { return data_dir() + "/text/tinystories_val.txt"; }
inline std::string kvstream_bin() { return std::string(KVSTREAM_BIN_DIR) + "/kvstream"; }
// A file of the repository, e.g. source_path("scripts/read_kv_numpy.py").
inline std::string source_path(const std::string& relative) { return std::string(KVSTREAM_SOURCE_DIR) + "/" + relative; }

}  // namespace kvstream::testing
