// container.h: the .kvs container of one context — header, model shape, profile hash, level ladder
// (JSON, with each level's measured quality), then for each chunk of `chunk_tokens` tokens one
// self-contained blob per level (see chunk_codec.h), each indexed with byte size and CRC32C. The
// last level is always "text" (the chunk's token ids). Every (chunk, level) decodes on its own.
//
// Contract: ContainerReader::parse() validates magic, version, header CRC, the ladder JSON (whose
// last level, and only it, is text), the index (sizes sum to the file, offsets in range, counts
// bounded by the file size, and every blob at least the size its method needs for the header's
// shape and its chunk's tokens, so that shape x tokens is bounded by the file size) before
// touching any blob, and throws CorruptBlob (a kvstream::Error, code kCorrupt) with a clear
// message otherwise; blob() re-checks the blob's CRC32C. Nothing is allocated from an unchecked
// length or product. decode_container() checks every blob of its range against the index before
// it allocates the output (4 bytes per value of the range). Byte layout: docs/FORMAT.md.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "codec/chunk_codec.h"
#include "codec/profile.h"

namespace kvstream::codec {

inline constexpr uint32_t kContainerVersion = 1;

// One entry of a container's ladder.
struct LadderLevel {
  std::string name;
  Method method = Method::Quant;
  int profile_level = -1;   // Quant: index into the profile's levels; -1 otherwise
  LevelQuality quality;     // as measured when the profile was made (text: lossless)
};
nlohmann::json ladder_to_json(const std::vector<LadderLevel>& ladder);
std::vector<LadderLevel> ladder_from_json(const nlohmann::json& j);  // throws std::runtime_error

struct ContainerInfo {
  KvShape shape;
  std::string model_name;
  float rope_theta = 10000.0f;
  uint64_t profile_hash = 0;
  uint32_t chunk_tokens = 64;
  uint64_t num_tokens = 0;
  uint32_t num_chunks = 0;
  std::vector<LadderLevel> ladder;  // levels in file order; the last is "text"
  int level_index(const std::string& name) const;  // throws std::invalid_argument if absent
  // Token range [first, last) of chunk c.
  uint64_t chunk_begin(uint32_t c) const { return uint64_t(c) * chunk_tokens; }
  uint64_t chunk_end(uint32_t c) const;
};

// Default ladder: every profile level (best quality first), then text.
std::vector<LadderLevel> default_ladder(const Profile& p);
// Adds baseline levels (fp16, q8, q4, zstd-fp16) before text.
void add_baselines(std::vector<LadderLevel>& ladder);

// Encodes a whole cache (token t at position t) with `threads` workers (0 = hardware).
std::vector<uint8_t> encode_container(const KvCache& kv, const Profile& profile,
                                      const std::vector<LadderLevel>& ladder,
                                      uint32_t chunk_tokens = 64, const EncodeOptions& opt = {},
                                      int threads = 0);

class ContainerReader {
 public:
  // Takes ownership of the file bytes and validates the header and index.
  static ContainerReader parse(std::vector<uint8_t> bytes);
  static ContainerReader open(const std::string& path);

  const ContainerInfo& info() const { return info_; }
  // The blob of (chunk, level), CRC-checked; throws std::out_of_range / CorruptBlob.
  std::span<const uint8_t> blob(uint32_t chunk, int level) const;
  uint32_t blob_size(uint32_t chunk, int level) const;
  uint32_t blob_crc(uint32_t chunk, int level) const;
  // The chunk's token ids, read from its text blob alone (allocates only the ids).
  std::vector<int32_t> tokens(uint32_t chunk) const;
  // Ladder index of the text level: always the last (parse() checks).
  int text_level() const { return int(info_.ladder.size()) - 1; }

 private:
  std::vector<uint8_t> bytes_;
  ContainerInfo info_;
  std::vector<uint64_t> offset_;  // [chunk * levels + level], absolute
  std::vector<uint32_t> size_, crc_;
};

// Decodes chunks [first, last) at `level` into one cache holding their tokens: row 0 is chunk
// `first`'s first token, and keys (post-RoPE unless pre_rope) are rotated for their true positions
// chunk_begin(first) + row. threads: 0 = hardware.
KvCache decode_container(const ContainerReader& r, const Profile* profile, int level,
                         uint32_t first, uint32_t last, bool pre_rope = false, int threads = 0);

}  // namespace kvstream::codec
