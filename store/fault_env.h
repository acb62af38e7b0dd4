// FaultInjectionEnv: an Env that forwards to another Env but first calls a hook before every
// operation, so tests can make a chosen operation fail (throw IoError), "crash" the process at that
// point (throw SimulatedCrash, or _exit in a forked child), or count operations.
//
// Contract: the hook receives the operation name ("open", "append", "sync", "close", "read",
// "rename", "remove", "list", "sync_dir", "mkdir", "size", "exists") and the path; whatever it
// throws propagates out of the Env call unchanged. Without a hook it behaves exactly like base.
#pragma once
#include <atomic>
#include <functional>
#include <mutex>
#include <stdexcept>

#include "store/env.h"

namespace kvstream::store {

// Thrown by test hooks to stand for the process dying at that instant. Not an IoError: the store
// must not catch it and tidy up, exactly as a real crash would not.
struct SimulatedCrash : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class FaultInjectionEnv final : public Env {
 public:
  using Hook = std::function<void(const std::string& op, const std::string& path)>;
  explicit FaultInjectionEnv(Env& base = default_env()) : base_(base) {}

  void set_hook(Hook h) {
    std::lock_guard lock(mu_);
    hook_ = std::move(h);
  }
  uint64_t ops() const { return ops_.load(); }

  std::unique_ptr<WritableFile> new_writable_file(const std::string& path) override;
  std::vector<uint8_t> read_file(const std::string& path, uint64_t max_bytes) override;
  uint64_t file_size(const std::string& path) override;
  bool file_exists(const std::string& path) override;
  void rename_file(const std::string& from, const std::string& to) override;
  bool remove_file(const std::string& path) override;
  void create_dir(const std::string& path) override;
  std::vector<std::string> list_dir(const std::string& dir) override;
  void sync_dir(const std::string& dir) override;
  uint64_t now_micros() override { return base_.now_micros(); }

  void check(const char* op, const std::string& path);

 private:
  Env& base_;
  std::mutex mu_;
  Hook hook_;
  std::atomic<uint64_t> ops_{0};
};

}  // namespace kvstream::store
