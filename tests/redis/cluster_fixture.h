// A real Redis Cluster for the Redis tier tests: 3 masters + 3 replicas from Debian's
// redis-server on free loopback ports, started by scripts/redis_cluster.sh in a temporary
// directory, once per test process (its cases share it: each uses its own tenant), and stopped
// with the directory deleted when the process exits — also when it crashes: the script's
// --owner watcher stops the cluster once this process is gone.
//
// Also a small real context for the tests: the codec tests' 128-token stories260K KV cache
// (tests/codec/data) encoded with a 3-level profile calibrated on it, 32-token chunks.
#pragma once
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>

#include "codec/container.h"
#include "store/redis_tier.h"
#include "tests/codec/codec_fixture.h"

namespace kvstream::testing {

// Runs a shell command; returns its stdout (stderr goes to `errfile`, quoted on failure).
inline std::string run_command(const std::string& cmd, const std::string& errfile) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>" + errfile).c_str(), "r");
  if (!p) throw std::runtime_error("cannot run " + cmd);
  std::array<char, 4096> buf{};
  while (size_t n = std::fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
  if (::pclose(p) != 0) {
    std::string err;
    if (FILE* f = std::fopen(errfile.c_str(), "r")) {
      while (size_t n = std::fread(buf.data(), 1, buf.size(), f)) err.append(buf.data(), n);
      std::fclose(f);
    }
    throw std::runtime_error(cmd + " failed:\n" + out + err);
  }
  return out;
}

class TestCluster {
 public:
  // The process's cluster for tests that leave it whole (started on first use).
  static TestCluster& get() {
    static std::unique_ptr<TestCluster> c(new TestCluster(false));
    return *c;
  }
  // A second one for the failover tests, which kill and restart nodes: its nodes keep an
  // append-only file, so that a restart keeps the data.
  static TestCluster& for_failover() {
    static std::unique_ptr<TestCluster> c(new TestCluster(true));
    return *c;
  }
  ~TestCluster() {
    try {
      script("stop --purge");
    } catch (const std::exception&) {
    }
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }

  const std::string& seed() const { return seed_; }
  // Every node as a seed, as a deployment lists several: discovery must not depend on the one node
  // a failover test may kill.
  std::string uri(const std::string& tenant) const {
    std::ifstream f(dir_ + "/ports");
    std::string seeds, port;
    while (f >> port) seeds += (seeds.empty() ? "" : ",") + std::string("127.0.0.1:") + port;
    return "redis://" + (seeds.empty() ? seed_ : seeds) + "/" + tenant;
  }
  store::RedisTierOptions options(const std::string& tenant) const {
    auto o = store::parse_redis_uri(uri(tenant));
    o.wait_timeout_s = 2.0;
    return o;
  }
  // Runs scripts/redis_cluster.sh CMD --dir DIR; returns its stdout (and stderr).
  std::string script(const std::string& cmd) const {
    return run_command(std::string(KVSTREAM_SOURCE_DIR) + "/scripts/redis_cluster.sh " + cmd + " --dir " + dir_,
                       root_ + "/script.err");
  }
  // SIGKILL the master serving `slot`; returns its port.
  int kill_master(uint16_t slot) const {
    return std::stoi(script("kill-master --slot " + std::to_string(slot)));
  }

 private:
  explicit TestCluster(bool aof) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "kvstream-redis-test-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    root_ = tmpl;
    dir_ = root_ + "/cluster";
    const std::string out = script(std::string("start --masters 3 --replicas 1 --node-timeout-ms 1000 --maxmemory 64mb") +
                                   (aof ? " --aof" : "") + " --owner " + std::to_string(::getpid()));
    seed_ = out.substr(0, out.find('\n'));
  }
  std::string root_, dir_, seed_;
};

// A real context: stories260K KV (128 tokens), a 3-level profile, the .kvs container.
struct SmallContext {
  std::vector<uint8_t> kvs;
  std::vector<uint8_t> profile_bytes;
  std::shared_ptr<const codec::ContainerReader> reader;
  std::vector<int32_t> tokens;
  static const SmallContext& get() {
    static const SmallContext c = [] {
      SmallContext s;
      const auto& p = test_profile();
      s.kvs = codec::encode_container(real_kv(), p, codec::default_ladder(p), 32, {}, 1);
      s.profile_bytes = codec::serialize_profile(p);
      s.reader = std::make_shared<const codec::ContainerReader>(codec::ContainerReader::parse(s.kvs));
      s.tokens = real_kv().tokens;
      return s;
    }();
    return c;
  }
};

}  // namespace kvstream::testing
