// decode_engine.h (internal): the CPU decoder's hot path behind decode_chunk() and CpuDecoder —
// format-3 Quant chunks decoded, dequantized, rotated, converted and stored into the caller's
// layout (kv_dest.h) in one pass per interleaved group, with run-time dispatch between a portable
// scalar path (decode_hd.h, the code the CUDA kernels run) and SIMD kernels (AVX2, AVX-512F;
// decode_engine_simd.h) that produce the same bits. Plus the output stage of the other blob kinds
// (baselines, format 2): float rows -> RoPE -> dtype -> layout.
//
// Dispatch: best_decode_path() is the widest path this build and CPU support; KVSTREAM_DECODE_PATH
// (scalar | avx2 | avx512 | auto), read once, or set_decode_path() overrides it process-wide (tests
// force every path; benchmarks compare them). A chunk the SIMD kernels cannot take (kv_dim not a
// multiple of 16 or head_dim not a multiple of 8) runs the scalar path whatever is selected.
// DecodeWorkspace holds everything a chunk needs beyond its blob and destination (layout arrays,
// escape list, row offsets, RoPE rows, float scratch) and keeps it: once warm, decoding allocates
// nothing. A workspace is used by one thread at a time.
#pragma once
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "codec/chunk_codec.h"
#include "codec/decode_engine_simd.h"
#include "codec/decode_hd.h"
#include "codec/kv_dest.h"
#include "codec/profile.h"

namespace kvstream::codec {

enum class DecodePath : uint8_t { Auto = 0, Scalar = 1, Avx2 = 2, Avx512 = 3 };
const char* decode_path_name(DecodePath p);       // "auto", "scalar", "avx2", "avx512"
DecodePath parse_decode_path(std::string_view s); // inverse; throws std::invalid_argument
bool decode_path_available(DecodePath p);         // supported by this CPU (Scalar, Auto: always)
DecodePath best_decode_path();
DecodePath active_decode_path();                  // what decodes use now (never Auto)
// Auto = best_decode_path(); throws std::invalid_argument for a path this CPU lacks.
void set_decode_path(DecodePath p);

// RoPE cos/sin rows (rope.h's rope_cs_rows layout) for one (theta, head_dim), computed once per
// position and kept for positions below a cap (kMaxBytes of table); rows beyond it are computed
// into the caller's spill vector each time.
class RopeTable {
 public:
  static constexpr size_t kMaxBytes = size_t(64) << 20;
  // Makes positions [0, end) resident if the cap allows (call before rows() of a batch: growing
  // moves the table).
  void reserve(float theta, int head_dim, uint64_t end);
  // Rows of positions [pos0, pos0 + n).
  const float* rows(float theta, int head_dim, uint32_t pos0, uint32_t n, std::vector<float>& spill);

 private:
  float theta_ = 0;
  int head_dim_ = 0;
  std::vector<float> cs_;  // positions [0, cs_.size() / head_dim)
};

class DecodeWorkspace {
 public:
  // One format-3 Quant chunk of a batch, prepared.
  struct Slot {
    QuantLayout lay;
    std::vector<uint32_t> esc_index;
    std::vector<int32_t> esc_q;
    std::vector<int64_t> row_off;
    std::vector<uint8_t*> base;
    std::vector<float> rope_spill;
    simd::OutJob out;
    uint32_t status[2] = {0, 0};
  };
  std::vector<Slot> slots;
  std::vector<simd::GroupJob> jobs;
  RopeTable rope;
  std::vector<float> scratch;  // float rows of baselines and format-2 chunks
  std::vector<float*> blocks;  // their (layer, kind) blocks
  std::vector<float> row;      // one rotated row
  std::vector<float> rope_spill;
  std::vector<uint8_t> raw;    // zstd-fp16: the decompressed body
};
// A workspace per thread, for callers that do not keep one.
DecodeWorkspace& thread_decode_workspace();

// A format-3 Quant blob to decode: header already parsed (CRC checked), profile and tables checked
// against it (hash, shape, level), destination rows checked (row0 = first row).
struct QuantChunkInput {
  std::span<const uint8_t> blob;
  const BlobHeader* header = nullptr;
  const Profile* profile = nullptr;
  const LevelDecodeTables* tables = nullptr;
  const KvDest* dst = nullptr;
  uint32_t row0 = 0;
  int32_t* tokens_out = nullptr;  // token-table blobs: receives the ids (may be null)
};
// Decodes the chunks (their interleaved groups two at a time, across chunks, on the SIMD paths).
// All must share dtype and key convention. Throws CorruptBlob for the first corrupt one (in input
// order; *failed = its index), std::invalid_argument for a destination slot out of range.
void decode_quant_chunks(std::span<const QuantChunkInput> in, DecodeWorkspace& ws, size_t* failed = nullptr);

// decode_hd.h's view of a level's tables.
inline HdLevel hd_level(const LevelDecodeTables& t) {
  return HdLevel{t.slots.data(), t.mean.data(), t.step.data(), t.q_min.data(), t.escape.data(), uint32_t(t.scale_bits)};
}

// decode_hd.h's view of a prepared format-3 chunk: everything but row_offset, rope_cs, status,
// symbols and level (which the caller sets for its memory).
HdChunk hd_chunk_of(std::span<const uint8_t> blob, const BlobHeader& h, const QuantLayout& lay,
                    const std::vector<uint32_t>& esc_index, const std::vector<int32_t>& esc_q, const Profile& p);

// Throws CorruptBlob describing a chunk's decode status: kHdBad* bits, escape symbols decoded vs
// listed (shared by the CPU and CUDA decoders).
void check_quant_status(uint32_t bad, uint32_t seen, uint32_t listed);

// The output stage of a chunk decoded to floats: blocks[layer * 2 + kind] holds tokens rows of
// kv_dim floats (keys pre-RoPE when keys_pre, else post-RoPE at positions first_pos...); writes them
// to dst rows row0... rotating keys forward or back as dst wants, in dst's dtype and layout.
void store_float_rows(const float* const* blocks, bool keys_pre, uint32_t first_pos, uint32_t tokens,
                      const KvDest& dst, uint32_t row0, DecodeWorkspace& ws);
// n floats -> n elements of dtype (half.h rounding), with the active path's conversions.
void convert_floats(const float* in, size_t n, Dtype dtype, uint8_t* out);

}  // namespace kvstream::codec
