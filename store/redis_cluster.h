// A Redis Cluster client on plain hiredis (Debian's libhiredis 0.14, which has no cluster support):
// slot routing, CLUSTER SLOTS discovery, MOVED/ASK redirects, reconnects, pipelining, replica
// reads, WAIT-acknowledged writes and a connection pool per node. The Redis tier
// (store/redis_tier.h) is its only user; no hiredis type appears in this header.
//
// Contract:
// - Construction discovers the topology from the first seed that answers CLUSTER SLOTS; if none
//   does, it throws kvstream::Error(kUnavailable) naming the seeds. A seed that is a single Redis
//   without cluster mode is refused (kUnavailable, the reply says why).
// - run() sends a batch of commands, each routed by the slot of its key (argv[key_arg]), as one
//   pipeline per node (all nodes' pipelines are written before any reply is read), and returns one
//   Reply per command, in order. It follows MOVED (and refreshes the slot map, at most every
//   refresh_interval_s) and ASK (ASKING, once) redirects, retries TRYAGAIN / CLUSTERDOWN /
//   LOADING / MASTERDOWN replies and broken connections (reconnecting, refreshing the slot map)
//   with backoff until the batch's budget runs out; a command that still has no answer then gets
//   a Reply of type kUnavailable whose text says which node failed and why (at once with
//   RunOptions::fail_fast). Any other Redis error reply is returned as it came (type kError).
//   run() never throws for a node being down.
// - A read (Request::read) whose master cannot be reached is sent to that slot's replicas
//   (READONLY on that connection) when ClusterOptions::replica_reads is set: during a failover the
//   replica that is about to be promoted serves it. Replies to reads may therefore be slightly
//   stale; the Redis tier's values are immutable per key and generation, so stale = older or absent.
// - With RunOptions::wait_replicas = n > 0, each node's pipeline ends with WAIT n timeout; a write
//   is acknowledged only when its node reports >= n replicas have it (else its Reply is
//   kUnavailable: "not acknowledged by n replicas"). Acknowledged writes survive the loss of their
//   master: the cluster promotes a replica that has them (with one replica per master, the only
//   candidate).
// - Thread-safe: any number of threads may call run()/exec() at once. Each connection is used by
//   one thread at a time; up to pool_size idle connections per node are kept for reuse. A node
//   whose connect failed is skipped (fail fast) for down_backoff_s before it is tried again.
// - Memory: a reply is copied out of hiredis and freed at once. Redis is trusted to answer within
//   the sizes kvstream writes (hiredis 0.14 has no reply-size bound); callers check every value.
#pragma once
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "store/redis_slot.h"

namespace kvstream::store::redis {

struct Endpoint {
  std::string host;
  uint16_t port = 0;
  std::string str() const { return host + ":" + std::to_string(port); }
  auto operator<=>(const Endpoint&) const = default;
};
// "HOST:PORT" (kvstream::Error kInvalidArgument otherwise).
Endpoint parse_endpoint(std::string_view s);

struct Reply {
  enum class Type { kNil, kString, kInteger, kStatus, kError, kArray, kUnavailable };
  Type type = Type::kNil;
  std::string str;  // string, status, error or unavailable text
  long long integer = 0;
  std::vector<Reply> elements;
  bool ok() const { return type != Type::kError && type != Type::kUnavailable; }
};

using Command = std::vector<std::string>;

struct Request {
  Command argv;
  bool read = false;   // may be served by a replica when the master is unreachable
  size_t key_arg = 1;  // argv index of the key that routes it
};

struct ClusterOptions {
  std::vector<Endpoint> seeds;
  double connect_timeout_s = 0.5;
  double io_timeout_s = 2.0;        // one reply
  double budget_s = 2.0;            // default time a batch keeps retrying before kUnavailable
  double down_backoff_s = 0.2;      // a node whose connect failed is not retried for this long
  double refresh_interval_s = 0.05; // slot-map refreshes are at least this far apart
  size_t pool_size = 8;             // idle connections kept per node
  int max_redirects = 16;           // per command and batch
  bool replica_reads = true;
};

struct RunOptions {
  double budget_s = -1;      // < 0: ClusterOptions::budget_s
  // Answer kUnavailable at once, instead of retrying until the budget runs out, for a command
  // whose node (and, for reads, every replica) is known down or that gets CLUSTERDOWN / LOADING /
  // MASTERDOWN: for reads on a serving path, where a fast fallback beats a wait.
  bool fail_fast = false;
  int wait_replicas = 0;     // > 0: writes must be acknowledged by this many replicas (WAIT)
  double wait_timeout_s = 1.0;
};

struct ClusterStats {
  uint64_t commands = 0, batches = 0, moved = 0, ask = 0, retries = 0, connects = 0, refreshes = 0;
  uint64_t replica_reads = 0, io_errors = 0, unavailable = 0, not_acknowledged = 0;
};

// One slot range of CLUSTER SLOTS: its master first, then its replicas.
struct SlotRange {
  uint16_t first = 0, last = 0;
  std::vector<Endpoint> nodes;
};

class Cluster {
 public:
  explicit Cluster(ClusterOptions opt);
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  std::vector<Reply> run(std::span<const Request> batch, const RunOptions& ro = {});
  // One command; throws kvstream::Error(kUnavailable) instead of returning a kUnavailable reply.
  Reply exec(Command argv, bool read = false, const RunOptions& ro = {});
  // One command on one node, unrouted, on a fresh connection (administration: CLUSTER SETSLOT,
  // INFO); throws kvstream::Error(kUnavailable) when the node cannot be reached.
  Reply exec_at(const Endpoint& ep, const Command& argv);

  // The current slot map (after discovery and refreshes), and a forced refresh (false when no
  // node answered).
  std::vector<SlotRange> slot_ranges() const;
  bool refresh();
  // The master the slot map names for a slot (nullopt-like empty host when the slot is unserved).
  Endpoint master_of(uint16_t slot) const;
  const ClusterOptions& options() const { return opt_; }
  std::string seeds_str() const;
  ClusterStats stats() const;

  struct Conn;  // (public so that the implementation's helpers can name it)
  struct Node;

 private:
  struct Topology {
    std::vector<SlotRange> ranges;
    std::array<int16_t, kSlots> range_of{};  // index into ranges, -1 if unserved
  };
  std::shared_ptr<const Topology> topology() const;
  bool refresh_from(const Endpoint& ep, std::string& why);
  bool maybe_refresh(bool force);
  Node& node(const Endpoint& ep);

  ClusterOptions opt_;
  mutable std::mutex topo_mu_;
  std::shared_ptr<const Topology> topo_;
  std::chrono::steady_clock::time_point last_refresh_{};
  std::mutex refresh_mu_;
  mutable std::mutex nodes_mu_;
  std::map<Endpoint, std::unique_ptr<Node>> nodes_;
  struct Counters {
    std::atomic<uint64_t> commands{0}, batches{0}, moved{0}, ask{0}, retries{0}, connects{0}, refreshes{0};
    std::atomic<uint64_t> replica_reads{0}, io_errors{0}, unavailable{0}, not_acknowledged{0};
  };
  mutable Counters n_;
};

}  // namespace kvstream::store::redis
