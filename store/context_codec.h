// ContextCodec: how the store turns a conversation's KV cache into the payload of a Record and
// back. The store itself treats payloads as opaque bytes; the replay engine, the async saver and
// the streamer integration use this interface.
//
// Contract: encode() takes a cache whose keys are PRE-RoPE (AttentionStore's decoupled positional
// encoding: keys are stored before rotation so that a truncated context can be re-rotated at new
// positions) holding token t at position t, and returns a payload with every level plus the text.
// level_bytes(payload, level, begin, end) is how many payload bytes a loader moves to rebuild
// tokens [begin, end) at `level` (whole chunks); decode() rebuilds them as a pre-RoPE cache whose
// row 0 is token `begin`. Both throw std::runtime_error on a corrupt payload or bad range.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "codec/kv_cache.h"
#include "codec/profile.h"

namespace kvstream::store {

class ContextCodec {
 public:
  virtual ~ContextCodec() = default;
  virtual std::string name() const = 0;
  virtual int num_levels() const = 0;
  virtual std::string level_name(int level) const = 0;
  virtual std::vector<uint8_t> encode(const KvCache& kv) const = 0;
  virtual uint64_t level_bytes(std::span<const uint8_t> payload, int level, size_t begin, size_t end) const = 0;
  virtual KvCache decode(std::span<const uint8_t> payload, int level, size_t begin, size_t end) const = 0;
};

// Raw fp32 payload (one lossless level; no codec profile needed): a small header, the pre-RoPE
// K and V of every layer. Used by tests and as the fallback when no profile is available.
std::unique_ptr<ContextCodec> make_raw_codec(KvShape shape, std::string model_name, float rope_theta);

// The codec's .kvs container (codec/container.h): every chunk at every level of `profile`'s
// default ladder plus text, chunk_tokens per chunk. Decoding runs on `threads` workers (1 keeps
// timings comparable). The profile is copied in.
std::unique_ptr<ContextCodec> make_container_codec(codec::Profile profile, uint32_t chunk_tokens = 64,
                                                   int threads = 1);

}  // namespace kvstream::store
