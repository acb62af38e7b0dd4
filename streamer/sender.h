// The sender (`kvstream send`): serves contexts (DIR/ctx.kvs, or whatever a ContextSource serves,
// e.g. a KV store's entries) over the kvstream protocol, version 3 (docs/PROTOCOL.md), to many
// receivers at once, and can be exposed to hostile clients.
//
// Contract:
// - Authentication: with `keys`, every connection proves its tenant's secret (HMAC handshake) and
//   sees only that tenant's source (default DIR/<tenant>/); without keys the sender serves anyone
//   and only when `insecure` says so (start() throws kvstream::Error(kAuth) otherwise).
//   PROFILE_GET, REQUEST and CHUNK_GET are answered only after authentication.
// - One I/O thread moves bytes for every connection; every ContextSource / ServedContext call
//   (context(), blob(), profile_bytes(): file loads, parsing, store and Redis reads) runs on a
//   worker pool, through one shared byte-bounded cache of parsed contexts and profiles. A slow
//   source never delays another connection's handshake.
// - Frames are direction-checked and read into a fixed 4 KiB buffer per connection: nothing is
//   allocated from a header. Queued frames are bounded per connection (max_queued_bytes: the
//   sender stops reading that connection's requests) and in total (memory_budget_bytes: requests
//   wait for memory). With keys, one tenant's queued frames and blob reads take at most
//   tenant_budget_bytes of that total, so a tenant whose receivers stop reading cannot starve
//   the others. A CHUNK_DATA blob is shared with the cache, not copied.
// - Timeouts that close: a connection not serving after handshake_timeout_s, a serving one that
//   sent nothing for idle_timeout_s while nothing is being written (ERROR(TIMEOUT)), and one whose
//   socket took no byte for write_timeout_s while a frame waits (closed at once, queue freed).
//   HELLO is accepted once. At most max_pending connections in their handshake (the oldest is
//   evicted by a new one), max_connections serving ones, max_tenant_connections per tenant
//   (ERROR(BUSY) beyond).
// - ERROR frames carry a code and a generic message; details (paths, exceptions) go to `log` only.
// - stop() is idempotent. Faults (tests only) make the sender misbehave on purpose at a chunk.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "streamer/tls_config.h"

namespace kvstream::streamer {

class ContextSource;
class Keyring;

struct SenderFaults {
  int corrupt_chunk = -1;  // flip a payload byte of this chunk's frame (after its CRC)
  // Flip a byte inside this chunk's blob before framing (the frame CRC is valid, the blob's own
  // CRC is not): at a KV level, or as text.
  int corrupt_blob_chunk = -1;
  int corrupt_text_chunk = -1;
  int stall_at_chunk = -1; // stop sending (but keep the socket open) when this chunk is requested
  int close_at_chunk = -1; // close the connection halfway through this chunk's frame
};

struct SenderOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0 = any free port (see Sender::port())
  // Insecure: DIR/<id>.kvs (+ DIR/*.kvprofile). With keys: tenant T's are DIR/T/<id>.kvs (+ profiles).
  std::string dir;
  // Insecure only: served instead of `dir`.
  std::shared_ptr<ContextSource> source;
  // With keys: tenant T's source (called once per tenant, on a worker; nullptr = serves nothing).
  // Default: DIR/T/ when it is a directory.
  std::function<std::shared_ptr<ContextSource>(const std::string& tenant)> tenant_source;
  std::shared_ptr<const Keyring> keys;  // authenticate every connection (null: see insecure)
  bool insecure = false;                // serve without authentication (required when keys is null)
  std::optional<TlsServerConfig> tls;   // TLS on every connection
  size_t max_connections = 1024;        // serving (authenticated, requested) connections
  size_t max_pending = 1024;            // connections in their handshake; the oldest is evicted
  size_t max_tenant_connections = 64;
  uint64_t max_queued_bytes = 16ull << 20;     // per connection, frames waiting to be written
  uint64_t memory_budget_bytes = 512ull << 20; // all connections' queued frames + blob reads
  uint64_t tenant_budget_bytes = 0;            // one tenant's share of it (0: a quarter; keys only)
  uint64_t cache_bytes = 256ull << 20;         // parsed contexts and profiles
  int workers = 2;                             // worker pool threads
  double handshake_timeout_s = 5;
  double idle_timeout_s = 60;
  double write_timeout_s = 10;
  SenderFaults faults;
  std::function<void(const std::string&)> log;  // one line per event; may be empty; any thread
};

struct SenderStats {
  uint64_t connections = 0, active = 0, frames_sent = 0, bytes_sent = 0, errors_sent = 0;
  uint64_t pending = 0, serving = 0;                 // now
  uint64_t evicted_pending = 0, refused_busy = 0, auth_failures = 0;
  uint64_t handshake_timeouts = 0, idle_timeouts = 0, write_timeouts = 0;
  uint64_t queued_bytes = 0, peak_queued_bytes = 0;  // frames waiting to be written, all connections
  uint64_t peak_tenant_queued_bytes = 0;             // the most one tenant held (keys only)
  uint64_t cache_bytes = 0, cache_hits = 0, cache_misses = 0;
};

class Sender {
 public:
  explicit Sender(SenderOptions opt);
  ~Sender();
  Sender(const Sender&) = delete;
  Sender& operator=(const Sender&) = delete;
  // Binds and listens, then serves on its own thread. Throws kvstream::Error: kAuth without keys
  // and not insecure, kInvalidArgument for unusable TLS files, kUnavailable when it cannot listen.
  void start();
  void stop();
  uint16_t port() const;
  SenderStats stats() const;

  struct Impl;  // (public so that the implementation's connection type can name it)

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace kvstream::streamer
