// decode_prep.h: host-side preparation shared by the CUDA decoder and its host emulation: a
// format-3 Quant blob validated and flattened into the arrays decode_hd.h reads (group offsets,
// final states, escape list), and decode_quant_emulated(), which runs decode_hd.h's functions on
// the host in the order and with the arguments the kernels use (one call per interleaved group —
// a warp on the device —, then one per layer-0 pair of a token-table blob), for tests on machines
// without a GPU. Format-1/2 Quant blobs are not prepared here: the CUDA decoder decodes them on
// the host like the baselines.
//
// Contract: prepare_quant_chunk() performs every check decode_chunk() performs before decoding
// (CRC, header, profile hash/shape/level, group directory, escape list: indices in range and
// strictly increasing, values in range, token ids) and throws CorruptBlob; the remaining checks
// (group end states, escapes at escape symbols) happen where the groups are decoded, via
// HdChunk::status.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "codec/chunk_codec.h"
#include "codec/decode_engine.h"  // hd_level
#include "codec/decode_hd.h"
#include "codec/decoder.h"
#include "codec/profile.h"
#include "codec/rope.h"  // rope_cs_rows: the cos/sin rows the device reads

namespace kvstream::codec {

struct PreparedQuantChunk {
  BlobHeader header;
  QuantLayout layout;
  std::vector<uint32_t> esc_index;  // strictly increasing
  std::vector<int32_t> esc_q;
};
// `profile_hash` must be profile.hash() (passed in so callers compute it once). Throws
// std::invalid_argument for a blob of format 1 or 2.
PreparedQuantChunk prepare_quant_chunk(std::span<const uint8_t> blob, const BlobHeader& h,
                                       const Profile& profile, uint64_t profile_hash);

// Throws CorruptBlob ("blob <blob_index>: ...") unless a decoded chunk's status words (HdChunk::status)
// say every group ended cleanly and exactly `escapes` escape symbols were decoded.
void check_chunk_status(const uint32_t* status, uint32_t escapes, size_t blob_index);

// decode_hd.h's dtype code of a destination dtype.
inline uint32_t hd_dtype(Dtype d) { return d == Dtype::F32 ? kHdF32 : d == Dtype::F16 ? kHdF16 : kHdBF16; }

// Runs the device decode path on the host (dst must be host memory): the same per-group and
// per-pair functions, argument structs and order of operations as the CUDA kernels. Throws like
// the CUDA decoder's finish() on corrupt groups.
void decode_quant_emulated(std::span<const uint8_t> blob, const Profile& profile, const KvDest& dst);

}  // namespace kvstream::codec
