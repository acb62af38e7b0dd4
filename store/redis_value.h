// The bytes of every value the Redis tier writes (store/redis_tier.h), and the context meta value.
// Byte layout: docs/FORMAT.md, "Redis tier values".
//
// Value frame (little-endian): magic "KVRV" | u8 version (1) | u8 kind | u16 0 | 16-byte key (hi,
// lo) | u64 generation | u32 chunk | u32 level | u32 payload length | payload | u32 CRC-32C of
// every byte before it. The frame says what it is (kind, key, generation, chunk, level): a value
// read under one key that was written for another, or for another generation of the same context,
// is rejected like a corrupt one — so a mixed-up or stale value is never served.
//
// Meta payload (kind kMeta, one per context): what a sender needs before any blob — the layout of
// the context's blob keys, the ladder (text level, level count), the manifest (levels, chunk sizes,
// token ids), the container's head (header + index, to reassemble the .kvs) and every chunk's text
// blob (so that a chunk can always be served as text, even when its KV value cannot be read).
//
// Contract: decode_value() and decode_meta() check every length against the bytes present before
// using it and throw CorruptValue (a kvstream::Error with code kCorrupt) on any mismatch.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvstream/error.h"
#include "store/key.h"
#include "streamer/wire.h"

namespace kvstream::store::redis {

struct CorruptValue : kvstream::Error {
  explicit CorruptValue(const std::string& what) : kvstream::Error(kvstream::ErrorCode::kCorrupt, what) {}
};

// A well-formed value of another generation of the same context (re-stored meanwhile): not
// corrupt, but not this context's either.
struct StaleValue : CorruptValue {
  explicit StaleValue(const std::string& what) : CorruptValue(what) {}
};

enum class ValueKind : uint8_t { kMeta = 1, kBlob = 2, kProfile = 3, kIndex = 4 };

// Where one context's blob values live: one hash tag per context (all on one node) or one per
// chunk (a context's chunks spread over the cluster; a chunk's levels stay together).
enum class Layout : uint8_t { kContext = 0, kChunk = 1 };
const char* layout_name(Layout l);   // "context" | "chunk"
Layout parse_layout(std::string_view s);  // kvstream::Error(kInvalidArgument) otherwise

struct ValueId {
  ValueKind kind = ValueKind::kBlob;
  PrefixKey key;
  uint64_t generation = 0;
  uint32_t chunk = 0, level = 0;
};

inline constexpr size_t kValueOverhead = 4 + 4 + 16 + 8 + 4 + 4 + 4 + 4;

std::string encode_value(const ValueId& id, std::span<const uint8_t> payload);
// The payload of `bytes` (a view into it) after checking the frame and that it is `want`: kind,
// key, chunk and level always; the generation when want.generation != 0 (StaleValue if it
// differs). `got` receives the frame's own id.
std::span<const uint8_t> decode_value(std::string_view bytes, const ValueId& want, ValueId* got = nullptr);

struct ContextMeta {
  Layout layout = Layout::kChunk;
  uint64_t generation = 0;  // from the value frame (not part of the payload)
  int text_level = -1;      // ladder index of the text level
  uint32_t ladder_levels = 0;
  streamer::Manifest manifest;  // context_id empty: the server fills in the id it was asked for
  std::vector<uint8_t> container_head;            // .kvs bytes before the first blob
  std::vector<std::vector<uint8_t>> text_blobs;   // one per chunk
  uint64_t stored_bytes = 0;                      // meta + blob values, as written
};

std::vector<uint8_t> encode_meta(const ContextMeta& m);
ContextMeta decode_meta(std::span<const uint8_t> payload);

}  // namespace kvstream::store::redis
