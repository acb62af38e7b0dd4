// version_text.h: what `kvstream --version` and `kvstream version` print (one implementation):
// the project version (kvstream/version.h, generated from CMakeLists.txt) on the first line, then
// how this binary was built.
#pragma once
#include <string>

#include "kvstream/version.h"

namespace kvstream::cli {

inline std::string version_text() {
  const std::string sanitize = KVSTREAM_BUILD_SANITIZE;
  return std::string("kvstream ") + KVSTREAM_VERSION + "\nbuild: " + KVSTREAM_BUILD_TYPE +
         (KVSTREAM_BUILD_CUDA ? ", CUDA decoder built in (used when a device is present)" : ", CPU decoder only (no CUDA)") +
         ", sanitizers " + (sanitize.empty() ? "none" : sanitize);
}

}  // namespace kvstream::cli
