// Where tests find the project's real shared data (../shared beside the repo root).
// KVSTREAM_SHARED in the environment overrides the path baked in at configure time.
#pragma once
#include <cstdlib>
#include <string>

namespace kvstream::testing {

inline std::string shared_dir() {
  if (const char* env = std::getenv("KVSTREAM_SHARED")) return env;
  return KVSTREAM_SHARED_DIR;
}
inline std::string model_path() { return shared_dir() + "/models/stories260K/stories260K.bin"; }
inline std::string tokenizer_path() { return shared_dir() + "/models/stories260K/tok512.bin"; }
inline std::string golden_path() { return shared_dir() + "/models/stories260K/golden.json"; }
inline std::string text_path() { return shared_dir() + "/text/tinystories_val.txt"; }
inline std::string kvstream_bin() { return std::string(KVSTREAM_BIN_DIR) + "/kvstream"; }

}  // namespace kvstream::testing
