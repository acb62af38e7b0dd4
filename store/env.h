// Env: the store's seam to the file system and the clock (LevelDB style), so that tests can inject
// failures (a crash between write and rename, a failed fsync, flipped bytes) without touching the
// store's logic.
//
// Contract: every method either succeeds or throws IoError (a kvstream::Error, code kIo, naming
// the path and the errno text). remove_file() on a missing file returns false instead of throwing.
// default_env() is a process-wide PosixEnv, safe to use from many threads at once.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "kvstream/error.h"

namespace kvstream::store {

struct IoError : kvstream::Error {
  explicit IoError(const std::string& what) : kvstream::Error(kvstream::ErrorCode::kIo, what) {}
};

// A file being written: append bytes, sync them to stable storage, close.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual void append(std::span<const uint8_t> data) = 0;
  virtual void sync() = 0;   // fsync
  virtual void close() = 0;  // idempotent; the destructor closes without throwing
};

class Env {
 public:
  virtual ~Env() = default;
  // Creates or truncates `path` for writing.
  virtual std::unique_ptr<WritableFile> new_writable_file(const std::string& path) = 0;
  // The whole file; throws IoError if it is missing or larger than max_bytes.
  virtual std::vector<uint8_t> read_file(const std::string& path, uint64_t max_bytes) = 0;
  virtual uint64_t file_size(const std::string& path) = 0;
  virtual bool file_exists(const std::string& path) = 0;
  // Atomically replaces `to` with `from` (POSIX rename).
  virtual void rename_file(const std::string& from, const std::string& to) = 0;
  virtual bool remove_file(const std::string& path) = 0;
  virtual void create_dir(const std::string& path) = 0;  // like mkdir -p
  // Names (not paths) of the regular files in `dir`.
  virtual std::vector<std::string> list_dir(const std::string& dir) = 0;
  // fsync on the directory, so that a rename inside it is durable.
  virtual void sync_dir(const std::string& dir) = 0;
  // Monotonic clock in microseconds.
  virtual uint64_t now_micros() = 0;
};

Env& default_env();

// Crash-safe write of `data` to dir/name: writes dir/name.tmp, fsyncs it, renames it over
// dir/name and fsyncs dir. A crash at any point leaves either the old file or the new one under
// `name` (never a torn one); a leftover *.tmp is garbage for the reader to delete. With
// sync = false the fsyncs are skipped (atomic against process crashes only, not power loss).
void write_file_atomic(Env& env, const std::string& dir, const std::string& name,
                       std::span<const uint8_t> data, bool sync = true);

inline constexpr const char* kTempSuffix = ".tmp";

}  // namespace kvstream::store
