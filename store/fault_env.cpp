#include "store/fault_env.h"

namespace kvstream::store {
namespace {

class FaultWritableFile final : public WritableFile {
 public:
  FaultWritableFile(FaultInjectionEnv& env, std::unique_ptr<WritableFile> f, std::string path)
      : env_(env), f_(std::move(f)), path_(std::move(path)) {}
  void append(std::span<const uint8_t> data) override {
    env_.check("append", path_);
    f_->append(data);
  }
  void sync() override {
    env_.check("sync", path_);
    f_->sync();
  }
  void close() override {
    env_.check("close", path_);
    f_->close();
  }

 private:
  FaultInjectionEnv& env_;
  std::unique_ptr<WritableFile> f_;
  std::string path_;
};

}  // namespace

void FaultInjectionEnv::check(const char* op, const std::string& path) {
  ++ops_;
  Hook h;
  {
    std::lock_guard lock(mu_);
    h = hook_;
  }
  if (h) h(op, path);
}

std::unique_ptr<WritableFile> FaultInjectionEnv::new_writable_file(const std::string& path) {
  check("open", path);
  return std::make_unique<FaultWritableFile>(*this, base_.new_writable_file(path), path);
}
std::vector<uint8_t> FaultInjectionEnv::read_file(const std::string& path, uint64_t max_bytes) {
  check("read", path);
  return base_.read_file(path, max_bytes);
}
uint64_t FaultInjectionEnv::file_size(const std::string& path) {
  check("size", path);
  return base_.file_size(path);
}
bool FaultInjectionEnv::file_exists(const std::string& path) {
  check("exists", path);
  return base_.file_exists(path);
}
void FaultInjectionEnv::rename_file(const std::string& from, const std::string& to) {
  check("rename", from);
  base_.rename_file(from, to);
}
bool FaultInjectionEnv::remove_file(const std::string& path) {
  check("remove", path);
  return base_.remove_file(path);
}
void FaultInjectionEnv::create_dir(const std::string& path) {
  check("mkdir", path);
  base_.create_dir(path);
}
std::vector<std::string> FaultInjectionEnv::list_dir(const std::string& dir) {
  check("list", dir);
  return base_.list_dir(dir);
}
void FaultInjectionEnv::sync_dir(const std::string& dir) {
  check("sync_dir", dir);
  base_.sync_dir(dir);
}

}  // namespace kvstream::store
