// chunk_codec.h: encodes one chunk of a KV cache (a run of consecutive token positions) at one
// level into a self-contained blob, and decodes a blob back into a KvCache or a caller-described
// destination layout (kv_dest.h) at its positions.
//
// Methods (a blob says which it is):
//   Quant    profile level: pre-RoPE keys, per-lane mean and fixed step from the profile, rANS with
//            the profile's per-lane tables in interleaved groups of kRansLanes states sharing one
//            word stream (format 3; rans.h), escapes for values outside a table's range. When the
//            profile has a token table (profile.h) and it reproduces the chunk's layer 0 within
//            half of every lane's step, the blob sets flag kBlobFlagTokenLayer, carries the chunk's
//            token ids (bit-packed) and codes only layers 1.. (layer 0 is rebuilt from the table).
//   Fp16     raw IEEE half values (keys post-RoPE), the "no compression" reference.
//   Q8, Q4   CacheGen-style per-token symmetric quantization: one fp16 absmax scale per
//            (layer, kind, token), 255 / 15 levels, 8 / 4 bits per value, no entropy coding.
//   ZstdFp16 zstd (level 3) over the Fp16 body.
//   Text     the chunk's token ids (the receiver recomputes KV from text).
// Value order inside a chunk: i = ((layer * 2 + kind) * tokens + t) * kv_dim + channel, which is
// the KvCache memory order of each (layer, kind) block. Format 3 codes Quant values in a
// channel-group order instead (FORMAT.md section 2); blobs of formats 1 and 2 are still read.
//
// Contract: encode_chunk() reads kv tokens [begin, end) (keys pre- or post-RoPE as kv says; token
// t sits at position pos0 + t - begin) and throws std::invalid_argument on bad ranges, shape or
// non-finite values where the method cannot carry them. decode_chunk() checks magic, version,
// CRC32C, profile hash, every length and count, and each rANS group's end state; on any mismatch
// it throws CorruptBlob and leaves the destination possibly partially written (only the blob's
// rows) but never reads or writes out of bounds. A KvCache `out` must have the profile's shape and
// already hold the blob's rows (a blob's positions never make the decoder allocate: CorruptBlob
// otherwise); keys are written post-RoPE or pre-RoPE as out.keys_pre_rope says. Token ids are
// written by Text and by token-table Quant blobs (the only blobs that carry them).
// Byte layout: docs/FORMAT.md.
#pragma once
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "kvstream/error.h"

#include "codec/kv_cache.h"
#include "codec/kv_dest.h"
#include "codec/profile.h"

namespace kvstream::codec {

inline constexpr uint8_t kBlobVersion = 3;      // written; versions 1 and 2 are read too
inline constexpr uint8_t kBlobFlagTokenLayer = 1;  // Quant: layer 0 from the profile's token table
inline constexpr size_t kBlobHeaderBytes = 28;  // fixed header before the method body
inline constexpr size_t kBlobTrailerBytes = 4;  // CRC32C

// A blob (or file) whose bytes fail their checks; code() is ErrorCode::kCorrupt.
struct CorruptBlob : kvstream::Error {
  explicit CorruptBlob(const std::string& what) : kvstream::Error(kvstream::ErrorCode::kCorrupt, what) {}
};

enum class Method : uint8_t { Quant = 1, Fp16 = 2, Q8 = 3, Q4 = 4, ZstdFp16 = 5, Text = 6 };
const char* method_name(Method m);  // "quant", "fp16", "q8", "q4", "zstd-fp16", "text"
Method parse_method(const std::string& s);  // inverse; throws std::invalid_argument

struct EncodeOptions {
  // Quant: symbols per interleaved group (format 3; rounded up to whole rounds of kRansLanes) or
  // per stream (format 2, clamped so every stream stays <= 32767 symbols). Larger chunks or models
  // get more groups: independent units for threads and GPU warps, 16 final states (64 bytes) each.
  int symbols_per_stream = 1 << 18;
  int zstd_level = 3;
  // Quant: the profile's hash() if the caller has it already (hashing serialises the profile);
  // 0 = compute it here.
  uint64_t profile_hash = 0;
  // Blob format to write: kBlobVersion, or 2 (the previous Quant layout; for compatibility tests
  // and the benchmark's reference decoder).
  uint8_t blob_version = kBlobVersion;
};

// Fixed header fields of a blob (parse_blob_header validates them against the blob length).
struct BlobHeader {
  uint8_t version = kBlobVersion;
  Method method{};
  uint8_t level = 0;          // Quant: index into the profile's levels
  uint8_t flags = 0;          // kBlobFlag* bits (only kBlobFlagTokenLayer, only on Quant)
  uint16_t tokens = 0;        // tokens in the chunk (1..65535)
  uint32_t first_pos = 0;     // position of the chunk's first token
  uint64_t profile_hash = 0;  // Quant: hash of the profile it needs; 0 otherwise
  KvShape shape;              // n_layers, n_kv_heads, head_dim (u16 each)
};
BlobHeader parse_blob_header(std::span<const uint8_t> blob);  // also checks the CRC

// A Quant blob's layout after validation (offsets into the blob), for CPU and CUDA decoders.
struct QuantLayout {
  uint8_t version = kBlobVersion;     // 3: interleaved groups; 1, 2: one state per stream
  uint32_t streams = 0;               // format 3: groups of kRansLanes states; 1, 2: streams
  uint32_t rounds_per_group = 0;      // format 3: rounds (kRansLanes values each) per group but the last
  uint64_t values = 0;                // coded values: 2 * n_layers * tokens * kv_dim - skip_values
  uint64_t skip_values = 0;           // leading chunk values not coded (token table: layer 0's K, V)
  std::vector<int32_t> tokens;        // token-table blobs: the chunk's ids (< 2^31; < vocab unchecked)
  std::vector<uint32_t> final_state;  // format 3: [group * kRansLanes + lane]; 1, 2: [stream]
  std::vector<uint32_t> offset;       // [streams + 1] byte offsets of each group's / stream's words
  uint32_t escapes = 0;               // escaped values
  size_t escape_offset = 0, escape_end = 0;  // byte range of the escape list
  size_t side_info_bytes = 0;         // header + directories + counts + CRC (not token ids)
};
QuantLayout parse_quant_layout(std::span<const uint8_t> blob, const BlobHeader& h);
// The same into `out`, reusing its vectors' memory (the decoders call this once per chunk).
void parse_quant_layout(std::span<const uint8_t> blob, const BlobHeader& h, QuantLayout& out);
// The escape list of a parsed layout: coded indices (strictly increasing, < lay.values) and values
// (|q| < 2^31) into index/q (resized); throws CorruptBlob otherwise.
void parse_escapes(std::span<const uint8_t> blob, const QuantLayout& lay, std::vector<uint32_t>& index,
                   std::vector<int32_t>& q);
// The token ids of a Text blob whose header h = parse_blob_header(blob) (CorruptBlob on a bad
// body); allocates only the h.tokens ids, never a cache.
std::vector<int32_t> text_tokens(std::span<const uint8_t> blob, const BlobHeader& h);
// Token-table blobs (lay.skip_values > 0): throws CorruptBlob unless the profile has a token table
// covering every id in lay.tokens. No-op for other blobs. Shared by the CPU and device paths.
void check_token_ids(const QuantLayout& lay, const Profile& p);
// Throws std::invalid_argument unless h's shape equals dst.shape, h is not Text, and rows
// [first_pos - pos_base, + tokens) lie in [0, capacity). Returns the first row.
uint32_t check_dest_fits(const BlobHeader& h, const KvDest& dst);

// Encodes kv tokens [begin, end) at positions pos0... Quant needs profile + level; the baselines
// and Text ignore them (profile may be null).
std::vector<uint8_t> encode_chunk(const KvCache& kv, size_t begin, size_t end, uint32_t pos0,
                                  Method method, const Profile* profile, int level,
                                  const EncodeOptions& opt = {});

// Decodes a blob into out at its positions (see contract): the token at position p goes to row
// p - pos_base (CorruptBlob if the blob starts before pos_base). `tables` may be given to skip
// rebuilding the level's decode tables (must be build_decode_tables(profile, header.level)).
void decode_chunk(std::span<const uint8_t> blob, const Profile* profile, KvCache& out,
                  const LevelDecodeTables* tables = nullptr, uint32_t pos_base = 0);

class DecodeWorkspace;  // decode_engine.h: scratch reused from chunk to chunk
// Decodes a blob straight into a caller-described host destination (kv_dest.h): rows, dtype, keys
// rotated or not as dst says. Throws std::invalid_argument for a Text blob, a shape that differs
// from dst.shape or rows outside the destination (check_dest_fits, before anything is written),
// and CorruptBlob as decode_chunk() does. `ws` (may be null: a per-thread one) keeps scratch
// between calls so that no call allocates once warm. `tokens_out`, if given, receives a token-table
// blob's ids ([tokens] entries; untouched for other blobs).
void decode_chunk(std::span<const uint8_t> blob, const Profile* profile, const KvDest& dst,
                  const LevelDecodeTables* tables = nullptr, DecodeWorkspace* ws = nullptr,
                  int32_t* tokens_out = nullptr);

// Statistics of an encoded Quant chunk (for bench): ideal bits = -sum log2 p(symbol) under the
// tables used, coded payload bits, side info bytes.
struct BlobStats {
  size_t bytes = 0;
  size_t side_info_bytes = 0;
  double ideal_bits = 0;
  double coded_bits = 0;  // stream words + final states, in bits
};
// `tables` as for decode_chunk (optional).
BlobStats blob_stats(std::span<const uint8_t> blob, const Profile* profile, const LevelDecodeTables* tables = nullptr);

}  // namespace kvstream::codec
