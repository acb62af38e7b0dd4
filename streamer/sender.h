// The sender (`kvstream send`): serves every DIR/ctx.kvs as context `ctx` (or whatever a given
// ContextSource serves, e.g. a KV store's entries) over the kvstream protocol (docs/PROTOCOL.md)
// to many receivers at once.
//
// Contract: one Asio io_context thread drives every connection asynchronously, so a slow or
// stalled receiver never blocks another. Memory per connection is bounded: the sender stops
// reading a connection's requests while max_queued_frames frames are waiting to be written, and a
// frame is at most one chunk blob (or the profile). Every received frame is validated; a bad frame,
// an unknown context, an out-of-range chunk or level gets an ERROR frame and the connection is
// closed after it; a receiver silent for idle_timeout_s is dropped. stop() is idempotent.
// Faults (tests only) make the sender misbehave on purpose at a given chunk index.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace kvstream::streamer {

class ContextSource;

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
  std::string dir;
  std::shared_ptr<ContextSource> source;  // when set, served instead of `dir`
  size_t max_connections = 256;
  size_t max_queued_frames = 8;
  double idle_timeout_s = 60;
  SenderFaults faults;
  std::function<void(const std::string&)> log;  // one line per event; may be empty
};

struct SenderStats {
  uint64_t connections = 0, active = 0, frames_sent = 0, bytes_sent = 0, errors_sent = 0;
};

class Sender {
 public:
  explicit Sender(SenderOptions opt);
  ~Sender();
  Sender(const Sender&) = delete;
  Sender& operator=(const Sender&) = delete;
  void start();  // binds and listens (throws std::runtime_error), then serves on its own thread
  void stop();
  uint16_t port() const;
  SenderStats stats() const;

  struct Impl;  // (public so that the implementation's connection type can name it)

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace kvstream::streamer
