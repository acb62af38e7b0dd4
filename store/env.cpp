#include "store/env.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

namespace kvstream::store {
namespace {

[[noreturn]] void fail(const std::string& what, const std::string& path, int err) {
  throw IoError(what + " " + path + ": " + std::strerror(err));
}

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }
  void append(std::span<const uint8_t> data) override {
    const uint8_t* p = data.data();
    size_t left = data.size();
    while (left > 0) {
      const ssize_t n = ::write(fd_, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail("write", path_, errno);
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
  }
  void sync() override {
    if (::fsync(fd_) != 0) fail("fsync", path_, errno);
  }
  void close() override {
    if (fd_ < 0) return;
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail("close", path_, errno);
  }

 private:
  int fd_;
  std::string path_;
};

class PosixEnv final : public Env {
 public:
  std::unique_ptr<WritableFile> new_writable_file(const std::string& path) override {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) fail("open", path, errno);
    return std::make_unique<PosixWritableFile>(fd, path);
  }
  std::vector<uint8_t> read_file(const std::string& path, uint64_t max_bytes) override {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("open", path, errno);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int e = errno;
      ::close(fd);
      fail("stat", path, e);
    }
    if (static_cast<uint64_t>(st.st_size) > max_bytes) {
      ::close(fd);
      throw IoError("read " + path + ": file is " + std::to_string(st.st_size) +
                    " bytes, more than the limit " + std::to_string(max_bytes));
    }
    std::vector<uint8_t> out(static_cast<size_t>(st.st_size));
    size_t got = 0;
    while (got < out.size()) {
      const ssize_t n = ::read(fd, out.data() + got, out.size() - got);
      if (n < 0) {
        if (errno == EINTR) continue;
        const int e = errno;
        ::close(fd);
        fail("read", path, e);
      }
      if (n == 0) break;  // shrank under us: return what is there; the checksum decides
      got += static_cast<size_t>(n);
    }
    ::close(fd);
    out.resize(got);
    return out;
  }
  uint64_t file_size(const std::string& path) override {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) fail("stat", path, errno);
    return static_cast<uint64_t>(st.st_size);
  }
  bool file_exists(const std::string& path) override {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
  }
  void rename_file(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) fail("rename", from + " -> " + to, errno);
  }
  bool remove_file(const std::string& path) override {
    if (::unlink(path.c_str()) == 0) return true;
    if (errno == ENOENT) return false;
    fail("unlink", path, errno);
  }
  void create_dir(const std::string& path) override {
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    if (ec) throw IoError("mkdir " + path + ": " + ec.message());
  }
  std::vector<std::string> list_dir(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (!d) fail("opendir", dir, errno);
    std::vector<std::string> names;
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      struct stat st {};
      if (::stat((dir + "/" + name).c_str(), &st) == 0 && S_ISREG(st.st_mode)) names.push_back(name);
    }
    ::closedir(d);
    return names;
  }
  void sync_dir(const std::string& dir) override {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) fail("open", dir, errno);
    const int rc = ::fsync(fd);
    const int e = errno;
    ::close(fd);
    if (rc != 0) fail("fsync", dir, e);
  }
  uint64_t now_micros() override {
    using namespace std::chrono;
    return static_cast<uint64_t>(
        duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count());
  }
};

}  // namespace

Env& default_env() {
  static PosixEnv env;
  return env;
}

void write_file_atomic(Env& env, const std::string& dir, const std::string& name,
                       std::span<const uint8_t> data, bool sync) {
  const std::string final_path = dir + "/" + name;
  const std::string tmp_path = final_path + kTempSuffix;
  try {
    auto f = env.new_writable_file(tmp_path);
    f->append(data);
    if (sync) f->sync();
    f->close();
  } catch (const IoError&) {
    try {
      env.remove_file(tmp_path);  // best effort: a failed write leaves no garbage behind
    } catch (const IoError&) {
    }
    throw;
  }
  env.rename_file(tmp_path, final_path);
  if (sync) env.sync_dir(dir);
}

}  // namespace kvstream::store
