// decode_prep.h: host-side preparation shared by the CUDA decoder and its host emulation: a Quant
// blob validated and flattened into the arrays decode_hd.h reads (stream offsets, final states,
// escape list), a profile level's flat tables (slots + LaneParam), RoPE cos/sin rows computed with
// rope.cpp's exact expressions, and decode_quant_emulated(), which runs decode_hd.h's functions on
// the host in the order and with the arguments the kernels use (one call per stream, then one
// call per key pair), for tests on machines without a GPU.
//
// Contract: prepare_quant_chunk() performs every check decode_chunk() performs before decoding
// (CRC, header, profile hash/shape/level, stream directory, escape list: indices in range and
// strictly increasing, values in range) and throws CorruptBlob; the remaining checks (stream end
// states, escapes at escape symbols) happen where the streams are decoded, via HdChunk::status.
// check_dest_fits() throws std::invalid_argument when a blob's rows or shape do not fit dst.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "codec/chunk_codec.h"
#include "codec/decode_hd.h"
#include "codec/decoder.h"
#include "codec/profile.h"

namespace kvstream::codec {

struct PreparedQuantChunk {
  BlobHeader header;
  QuantLayout layout;
  std::vector<uint32_t> esc_index;  // strictly increasing
  std::vector<int32_t> esc_q;
};
// `profile_hash` must be profile.hash() (passed in so callers compute it once).
PreparedQuantChunk prepare_quant_chunk(std::span<const uint8_t> blob, const BlobHeader& h,
                                       const Profile& profile, uint64_t profile_hash);

// A level's tables in decode_hd.h's layout.
struct LevelLanes {
  uint32_t scale_bits = 12;
  std::vector<uint32_t> slots;   // [lane << scale_bits | slot]
  std::vector<LaneParam> lanes;  // [lane]
};
LevelLanes build_level_lanes(const Profile& p, int level);

// cos/sin of positions pos0 .. pos0 + n - 1: out[(r * head_dim/2 + j) * 2 + {0, 1}] = the fcr[j],
// fci[j] that rope_rotate_rows() computes for position pos0 + r (sin negated when inverse).
void rope_cs_rows(float theta, int head_dim, uint32_t pos0, uint32_t n, bool inverse, float* out);

// Throws std::invalid_argument unless h's shape equals dst.shape, h is not Text, and rows
// [first_pos - pos_base, + tokens) lie in [0, capacity). Returns the first row.
uint32_t check_dest_fits(const BlobHeader& h, const KvDest& dst);

// Runs the device decode path on the host (dst must be host memory): the same per-stream and
// per-pair functions, argument structs and order of operations as the CUDA kernels. Throws like
// the CUDA decoder's finish() on corrupt streams.
// Throws CorruptBlob ("blob <blob_index>: ...") unless a decoded chunk's status words (HdChunk::status)
// say every stream ended cleanly and exactly `escapes` escape symbols were decoded.
void check_chunk_status(const uint32_t* status, uint32_t escapes, size_t blob_index);

// decode_hd.h's dtype code of a destination dtype.
inline uint32_t hd_dtype(Dtype d) { return d == Dtype::F32 ? kHdF32 : d == Dtype::F16 ? kHdF16 : kHdBF16; }

void decode_quant_emulated(std::span<const uint8_t> blob, const Profile& profile, const KvDest& dst);

}  // namespace kvstream::codec
