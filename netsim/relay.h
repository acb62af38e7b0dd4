// netsim/relay.h — a shaping TCP relay over real sockets (standalone Asio), driven by LinkModel.
//
// Topology (the direction a KV cache flows): receiver --connects--> Relay --connects--> sender.
// For every accepted connection the relay opens one upstream connection to `connect_host:port`.
// - upstream -> downstream (sender -> receiver) bytes are shaped by the trace through ONE LinkModel
//   shared by all connections (a single FIFO bottleneck), then delayed by delay_ns.
// - downstream -> upstream bytes are only delayed by delay_ns (not shaped).
// - Back-pressure: the relay reads upstream only while the shared link queue has room (queue_bytes)
//   and while the receiver keeps up (write backlog <= write_backlog_bytes), so a fast sender is
//   slowed by TCP flow control; memory is bounded (queue + capacity*delay + backlogs).
// - EOF (half-close) is propagated both ways after the data before it (and never earlier than
//   delay after it was seen); a reset/error on either side closes both sockets of that
//   connection only; the relay keeps serving others. stop() closes everything and joins; it is
//   idempotent and called by the destructor. No call blocks on a peer.
// - Link time 0 (the trace's t = 0) is the first accepted connection when
//   trace_starts_at_first_connection, otherwise start(). link_epoch() says when that was.
// - Statistics are thread-safe snapshots: per-second bytes delivered downstream (with the trace's
//   capacity in the same second) and per-connection totals.
// - Fault mode (tests, the reliability suite): with fault.kind set, every connection's
//   sender -> receiver stream meets one fault at a byte offset drawn uniformly from
//   [min_offset, max_offset) by a generator seeded with (seed, connection id), so runs repeat:
//   cut = the receiver gets exactly that many bytes, then both sockets are reset; corrupt = that
//   byte is XORed with a nonzero value; stall = nothing from that byte on is forwarded (the sockets
//   stay open until the receiver closes its side). A stream shorter than the offset meets none.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "netsim/link_model.h"
#include "netsim/trace.h"

namespace kvstream::netsim {

enum class FaultKind { kNone, kCut, kCorrupt, kStall };
// "cut" | "corrupt" | "stall" (std::invalid_argument otherwise).
FaultKind parse_fault_kind(const std::string& s);
const char* fault_kind_name(FaultKind k);

struct FaultConfig {
  FaultKind kind = FaultKind::kNone;
  std::uint64_t seed = 1;
  std::uint64_t min_offset = 0, max_offset = 64 * 1024;  // forward-stream byte offset range, min < max
};
// The offset at which connection `id` meets its fault (deterministic in seed and id).
std::uint64_t fault_offset(const FaultConfig& f, std::uint32_t id);

struct RelayConfig {
  Trace trace;
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 0;  // 0 = pick a free port (see Relay::port())
  std::string connect_host = "127.0.0.1";
  std::uint16_t connect_port = 0;
  TimeNs delay_ns = 0;  // one-way, both directions (plus the trace's path_delay_ns(); config() shows the sum)
  std::uint64_t queue_bytes = 1u << 20;         // shared bottleneck queue, > 0 (bounded buffering)
  std::uint64_t write_backlog_bytes = 4u << 20; // per connection and direction
  TimeNs tick_ns = 250'000;                     // minimum spacing of shaping wake-ups
  bool trace_starts_at_first_connection = true;
  FaultConfig fault;                            // none by default
};

struct RelayConnectionStats {
  std::uint32_t id = 0;
  std::uint64_t bytes_down = 0;  // shaped, delivered to the receiver
  std::uint64_t bytes_up = 0;    // delivered to the sender
  double opened_s = 0;           // link time
  double first_up_byte_s = -1;   // first byte read from the sender (link time), -1 if none
  double last_down_byte_s = -1;  // last byte written to the receiver (link time), -1 if none
  double closed_s = -1;          // -1 while open
  std::string end_reason;        // "eof", "reset: <message>", "connect failed: ...", "stopped"
  std::int64_t fault_offset = -1;  // fault mode: the forward offset of its fault (-1: none)
  bool fault_struck = false;       // whether the stream reached it
};

struct RelaySecondStats {
  std::int64_t second = 0;         // [second, second+1) of link time
  std::uint64_t bytes_down = 0;    // written to receivers in that second
  double mbps = 0;
  double capacity_mbps = 0;        // the trace's capacity in that second
};

struct RelayStats {
  std::uint64_t connections = 0;
  std::uint64_t bytes_down = 0, bytes_up = 0;
  std::vector<RelaySecondStats> per_second;
  std::vector<RelayConnectionStats> per_connection;
  nlohmann::json to_json() const;
};

class Relay {
 public:
  explicit Relay(RelayConfig config);
  ~Relay();
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  void start();  // resolves, binds, listens (throws std::runtime_error on failure), runs a thread
  void stop();   // closes all connections and the listener, joins the thread; idempotent
  std::uint16_t port() const;  // the bound listen port (valid after start())
  // steady_clock instant of link time 0 (nullopt until it is set).
  std::optional<std::chrono::steady_clock::time_point> link_epoch() const;
  RelayStats stats() const;
  const RelayConfig& config() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvstream::netsim
