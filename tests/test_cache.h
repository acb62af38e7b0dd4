// A codec profile built once per test binary instead of once per test process.
//
// catch_discover_tests runs every test case in a process of its own, so a fixture that builds a
// profile (seconds; tens of seconds under ASan) pays for it in every case. shared_profile() keeps
// the first build in <build>/test-cache/, under a name stamped with the test binary's and the
// data's sizes and modification times: a rebuilt binary or changed data never reads an old one
// (and the rebuild removes it).
// The file is written under a temporary name and renamed, so a concurrent process (ctest -j)
// reads a whole profile or none; one that fails to load is built again. Every process still
// builds its own container and KV cache from the profile it loads.
#pragma once
#include <filesystem>
#include <functional>
#include <string>
#include <system_error>

#include "codec/profile.h"
#include "tests/test_data.h"

#include <unistd.h>

namespace kvstream::testing {

// "<size>-<mtime>" of a file, "none" where it cannot be read.
inline std::string file_stamp(const std::filesystem::path& p) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(p, ec);
  if (ec) return "none";
  const auto time = std::filesystem::last_write_time(p, ec);
  if (ec) return "none";
  return std::to_string(size) + "-" + std::to_string(time.time_since_epoch().count());
}

inline codec::Profile shared_profile(const std::string& name, const std::function<codec::Profile()>& build) {
  namespace fs = std::filesystem;
  std::error_code exe_ec, ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", exe_ec);
  if (exe_ec) return build();  // no binary to stamp a file with: nothing is shared
  const std::string prefix = exe.filename().string() + "-" + name + "-";
  const std::string key = prefix + std::to_string(std::hash<std::string>{}(
                              file_stamp(exe) + "|" + file_stamp(model_path()) + "|" + file_stamp(text_path())));
  const fs::path dir = fs::path(KVSTREAM_BIN_DIR).parent_path() / "test-cache";
  const fs::path path = dir / (key + ".kvprofile");
  if (fs::exists(path, ec)) {
    try {
      return codec::load_profile(path.string());
    } catch (const std::exception&) {  // a damaged file: build it again below
    }
  }
  codec::Profile p = build();
  fs::create_directories(dir, ec);
  const fs::path tmp = dir / (key + ".tmp." + std::to_string(::getpid()));
  try {
    codec::save_profile(p, tmp.string());
    fs::rename(tmp, path, ec);
    for (const auto& e : fs::directory_iterator(dir, ec))  // the profiles of earlier builds
      if (e.path() != path && e.path().filename().string().rfind(prefix, 0) == 0 &&
          e.path().extension() == ".kvprofile")
        fs::remove(e.path(), ec);
  } catch (const std::exception&) {  // a cache that cannot be written only costs time
  }
  fs::remove(tmp, ec);
  return p;
}

}  // namespace kvstream::testing
