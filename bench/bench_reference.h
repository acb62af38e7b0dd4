// bench_reference.h: the CPU decoder as it was before blob format 3 (issue 17), kept runnable so
// that `bench codec` can time it side by side with the current one. Benchmark-only code.
//
// It decodes FORMAT-2 Quant blobs (EncodeOptions::blob_version = 2) the way that decoder did, with
// its allocations: CpuDecoder::submit parsed the header, resized a scratch KvCache and called
// decode_chunk(), which parsed the header again, collected block pointers, parsed the layout, filled
// layer 0 from the token table, ran the per-value loop (chunk_v2.h: one rANS state per stream, one
// slot-table load per value, a per-lane value table as dequantization, escapes patched after),
// rotated the keys with rope_rotate_rows(); then a scalar f32 -> f16/bf16 conversion per tensor.
// Same inputs, same bits out as the current decoder (the bench checks it); the CRC it computes is
// today's crc32c (SSE4.2), which makes it slightly faster than the old one was.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "codec/chunk_codec.h"
#include "codec/kv_cache.h"
#include "codec/kv_dest.h"
#include "codec/profile.h"

namespace kvstream::codec {

class ReferenceCpuDecoder {
 public:
  explicit ReferenceCpuDecoder(const Profile& p);
  // dst: host memory, contiguous packed rows (what the old KvDest described).
  void decode(std::span<const uint8_t> blob, const KvDest& dst);

 private:
  void decode_chunk_v2(std::span<const uint8_t> blob, KvCache& out, const LevelDecodeTables* tables, uint32_t pos_base);

  const Profile& profile_;
  std::vector<std::unique_ptr<LevelDecodeTables>> tables_;
  KvCache scratch_;
};

}  // namespace kvstream::codec
