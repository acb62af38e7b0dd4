// Host-side preparation for the device decode path, and its host emulation (decode_prep.h).
#include "codec/decode_prep.h"

#include <stdexcept>
#include <string>

#include "codec/decode_engine.h"

namespace kvstream::codec {

PreparedQuantChunk prepare_quant_chunk(std::span<const uint8_t> blob, const BlobHeader& h,
                                       const Profile& profile, uint64_t profile_hash) {
  if (h.method != Method::Quant) throw std::invalid_argument("prepare_quant_chunk: not a quant blob");
  if (h.version < 3) throw std::invalid_argument("prepare_quant_chunk: a format-" + std::to_string(h.version) + " blob");
  // The same checks, in the same order, as decode_chunk()'s Quant branch.
  if (h.profile_hash != profile_hash) throw CorruptBlob("chunk blob: made with another profile (hash mismatch)");
  if (!(profile.shape == h.shape)) throw CorruptBlob("chunk blob: shape differs from profile");
  if (h.level >= profile.levels.size()) throw CorruptBlob("chunk blob: level not in profile");
  PreparedQuantChunk c;
  c.header = h;
  parse_quant_layout(blob, h, c.layout);
  check_token_ids(c.layout, profile);  // token-table blob: ids index the profile's table
  parse_escapes(blob, c.layout, c.esc_index, c.esc_q);
  return c;
}

void check_chunk_status(const uint32_t* status, uint32_t escapes, size_t blob_index) {
  try {
    check_quant_status(status[0], status[1], escapes);
  } catch (const CorruptBlob& e) {
    throw CorruptBlob("blob " + std::to_string(blob_index) + ": " + e.what());
  }
}

void decode_quant_emulated(std::span<const uint8_t> blob, const Profile& profile, const KvDest& dst) {
  dst.validate();
  if (dst.on_device) throw std::invalid_argument("decode_quant_emulated: destination must be host memory");
  const BlobHeader h = parse_blob_header(blob);
  const uint32_t row0 = check_dest_fits(h, dst);
  const PreparedQuantChunk pc = prepare_quant_chunk(blob, h, profile, profile.hash());
  const LevelDecodeTables t = build_decode_tables(profile, h.level);
  std::vector<float> cs;
  const bool rope = !dst.keys_pre_rope;
  if (rope) {
    cs.resize(size_t(h.tokens) * h.shape.head_dim);
    rope_cs_rows(dst.rope_theta, h.shape.head_dim, h.first_pos, h.tokens, false, cs.data());
  }
  std::vector<int64_t> rows(h.tokens);
  for (uint32_t r = 0; r < h.tokens; ++r) rows[r] = dst.row_offset(row0 + r);
  std::vector<void*> base;
  for (int l = 0; l < h.shape.n_layers; ++l) base.push_back(dst.k[size_t(l)]), base.push_back(dst.v[size_t(l)]);
  uint32_t status[2] = {0, 0};
  HdChunk c = hd_chunk_of(blob, h, pc.layout, pc.esc_index, pc.esc_q, profile);
  c.row_offset = rows.data();
  c.rope_cs = rope ? cs.data() : nullptr;
  c.status = status;
  const HdLevel L = hd_level(t);
  const HdOut o{base.data(), hd_dtype(dst.dtype), rope ? 1u : 0u, dst.head_stride_bytes()};
  // Kernel 1: one warp per interleaved group.
  for (uint32_t g = 0; g < c.groups; ++g) decode_group_hd(c, L, o, g);
  // Kernel 2: one thread per layer-0 pair of a token-table blob.
  for (uint32_t i = 0; i < token_pairs_hd(c); ++i) fill_token_pair_hd(c, o, i);
  check_chunk_status(status, pc.layout.escapes, 0);
}

}  // namespace kvstream::codec
