// Record: one stored encoded context (its token ids plus an opaque payload, normally a codec
// container with every chunk at every level) and its on-disk / in-memory byte format.
//
// Format (little-endian): magic "KVSREC01" | u32 n_tokens | u64 payload_bytes | 16-byte key
// (hi, lo) | i32 tokens[n_tokens] | payload | u32 CRC-32C of everything before it.
// Contract: parse_record() accepts only what serialize_record() writes: it checks the magic, that
// the declared sizes add up to exactly the buffer's size (before allocating anything), the
// checksum, and that the key is the PrefixHasher key of the tokens when a hasher is given; any
// mismatch throws CorruptRecord. A record's tokens are never empty.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <vector>

#include "kvstream/error.h"
#include "store/key.h"

namespace kvstream::store {

// A record whose bytes fail their checks; code() is kvstream::ErrorCode::kCorrupt.
struct CorruptRecord : kvstream::Error {
  explicit CorruptRecord(const std::string& what) : kvstream::Error(kvstream::ErrorCode::kCorrupt, what) {}
};

struct Record {
  PrefixKey key;
  std::vector<int32_t> tokens;
  std::vector<uint8_t> payload;
  // Size of serialize_record()'s output: what the record occupies in either tier.
  uint64_t stored_bytes() const;
};
using RecordPtr = std::shared_ptr<const Record>;

inline constexpr size_t kRecordOverhead = 8 + 4 + 8 + 16 + 4;
inline constexpr size_t kRecordHeaderBytes = 8 + 4 + 8 + 16;  // magic, n_tokens, payload_bytes, key
inline constexpr uint32_t kMaxRecordTokens = 1u << 24;
inline constexpr const char* kRecordSuffix = ".kvrec";  // a store's record files: <key hex>.kvrec

std::vector<uint8_t> serialize_record(const Record& r);
Record parse_record(std::span<const uint8_t> bytes, const PrefixHasher* hasher = nullptr);

// The fixed header of a record (its first kRecordHeaderBytes bytes), for readers that look at
// the tokens without the payload. Throws CorruptRecord on a bad magic or token count, or when the
// declared sizes do not add up to file_bytes.
struct RecordHeader {
  uint32_t n_tokens = 0;
  uint64_t payload_bytes = 0;
  PrefixKey key;
};
RecordHeader parse_record_header(std::span<const uint8_t> head, uint64_t file_bytes);

// The record checksum: codec::crc32c (the project's one CRC32C) over a span.
uint32_t crc32c(std::span<const uint8_t> data, uint32_t crc = 0);

}  // namespace kvstream::store
