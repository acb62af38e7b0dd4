// The reliability suite's hostile load: many connections at once to one sender, each misbehaving
// in one of seven ways, replaced after a short back-off whenever the sender drops it, so that the
// count stays up for the whole run.
//
// Kinds (connection i is kind i mod 7): silent (connects, sends nothing); slow (a valid HELLO at
// 1 byte/s); oversized (a header claiming a 64 MiB CHUNK_DATA, a HELLO over its limit, or a 1 KiB
// REQUEST whose payload comes at 1 byte/s); wrong
// direction (a well-formed MANIFEST / CHUNK_DATA frame, which only a sender may send); garbage
// (random bytes); repeated HELLO (HELLO every 200 ms); never reading (authenticates as a tenant,
// requests every chunk many times at the largest level through a 4 KiB receive buffer and never
// reads another byte). Runs on its own thread; stop() closes everything and joins.
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvstream::streamer::bench {

enum class HostileKind { kSilent, kSlow, kOversized, kWrongDirection, kGarbage, kRepeatHello, kNeverReading };
constexpr int kHostileKinds = 7;
const char* hostile_kind_name(HostileKind k);

struct HostileOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  int connections = 1000;         // held open at once
  double reconnect_s = 1.0;       // back-off after the sender dropped one
  std::string tenant;             // never-reading connections authenticate as this tenant ...
  std::vector<uint8_t> key;       // ... with this key
  std::string context;            // ... and request this context's chunks
  uint16_t level = 0;             // ... at this level
  uint32_t chunks = 1;            // ... 0 .. chunks-1, many times
  uint64_t seed = 1;
};

class HostileLoad {
 public:
  explicit HostileLoad(HostileOptions o);
  ~HostileLoad();
  void start();
  void stop();
  int open_now() const;  // connections currently connected
  nlohmann::json stats() const;  // per kind: connects, dropped by the sender, ERROR frames seen

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace kvstream::streamer::bench
