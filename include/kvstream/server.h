// kvstream/server.h — a kvstream sender inside the caller's process (public API): serves the
// contexts of a directory (ctx.kvs + their *.kvprofile) and, optionally, the entries of a store
// directory (by key: what put() returns and Lookup finds) to any kvstream receiver (Transfer,
// `kvstream recv`), over the kvstream protocol (docs/PROTOCOL.md).
//
// Contract:
// - start() binds and listens (port 0: any free port, see port()) and serves on kvstream's own
//   threads until stop() (idempotent; the destructor calls it). A slow or stalled receiver never
//   blocks another; memory per connection is bounded (docs/PROTOCOL.md).
// - Store entries are served from the store's disk tier, and through a memory tier when
//   store_mem_bytes > 0; a served entry counts as use for its eviction policy; an entry put() by
//   another process after start() is found on first request. The tiers are exclusive: an entry
//   promoted to memory leaves the directory, so a kvstream::Lookup of the directory no longer sees
//   it (Server::lookup does). Hence the default store_mem_bytes = 0: every entry stays a file
//   (the OS page cache still keeps hot entries in memory) and Lookups by other processes see all. The store's model is model_name, or the one model of dir's
//   profiles. Profiles are always served from dir: put() entries need their profile there.
// - lookup() answers like kvstream::Lookup for the store this server serves (no side effects); with
//   keys_file, for tenant's part of it (kInvalidArgument for a tenant the keys file lacks).
// - Throws kvstream::Error: kAuth (neither keys_file nor insecure), kInvalidArgument (options; a
//   keyed store without store_secret_file; a store without a model name when dir's
//   profiles name several models), kNotFound (dir is not a directory), kUnavailable (cannot
//   listen).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kvstream/lookup.h"

namespace kvstream {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string dir;                          // ctx.kvs contexts and *.kvprofile profiles
  std::string store_dir;                    // also serve this store's entries (empty: none)
  uint64_t store_mem_bytes = 0;              // memory tier (see the contract: 0 keeps Lookup exact)
  uint64_t store_disk_bytes = 1ull << 30;
  std::string store_policy = "lru";         // lru | fifo | scheduler
  std::string model_name;                   // the store's model (empty: from dir's profiles)
  uint32_t chunk_tokens = 64;               // the store's key chunk
  double idle_timeout_s = 60;               // drop a receiver silent for this long
  std::function<void(const std::string&)> log;  // one line per event (any thread); may be empty
  // Security (docs/PROTOCOL.md, "Authentication, tenants and TLS"). With keys_file every receiver
  // authenticates as a tenant T of the file ('TENANT HEXSECRET' lines, mode 0600) and sees only
  // T's contexts: dir/T/ and store_dir/T/, the latter keyed by T's secret derived from
  // store_secret_file (required with a store). Without keys_file anyone who connects is served,
  // and only when insecure is set (the constructor throws kAuth otherwise); store keys are then public
  // unless store_secret_file is given.
  std::string keys_file;
  bool insecure = false;
  std::string store_secret_file;            // the deployment secret of the store's keys (hex, 0600)
  std::string tls_cert_file, tls_key_file;  // TLS on every connection (PEM; both or neither)
};

struct ServerStats {
  uint64_t connections = 0, active = 0, frames_sent = 0, bytes_sent = 0, errors_sent = 0;
};

class Server {
 public:
  explicit Server(ServerOptions opt);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  void start();
  void stop();
  uint16_t port() const;  // the bound port (after start())
  ServerStats stats() const;
  // The store's longest prefix of tokens (matched_tokens = 0 without a store); tenant: with keys_file.
  LookupResult lookup(const int32_t* tokens, size_t n, const std::string& tenant = {}) const;
  LookupResult lookup(const std::vector<int32_t>& tokens, const std::string& tenant = {}) const {
    return lookup(tokens.data(), tokens.size(), tenant);
  }

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvstream
