// Host-side preparation for the device decode path, and its host emulation (decode_prep.h).
#include "codec/decode_prep.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "codec/bytes.h"

namespace kvstream::codec {

PreparedQuantChunk prepare_quant_chunk(std::span<const uint8_t> blob, const BlobHeader& h,
                                       const Profile& profile, uint64_t profile_hash) {
  if (h.method != Method::Quant) throw std::invalid_argument("prepare_quant_chunk: not a quant blob");
  // The same checks, in the same order, as decode_chunk()'s Quant branch.
  if (h.profile_hash != profile_hash) throw CorruptBlob("chunk blob: made with another profile (hash mismatch)");
  if (!(profile.shape == h.shape)) throw CorruptBlob("chunk blob: shape differs from profile");
  if (h.level >= profile.levels.size()) throw CorruptBlob("chunk blob: level not in profile");
  PreparedQuantChunk c;
  c.header = h;
  c.layout = parse_quant_layout(blob, h);
  const uint64_t N = c.layout.values;
  if (N >= (uint64_t(1) << 32)) throw CorruptBlob("chunk blob: too many values");
  ByteReader<CorruptBlob> r{blob.subspan(0, c.layout.escape_end), c.layout.escape_offset, "chunk blob"};
  c.esc_index.reserve(c.layout.escapes);
  c.esc_q.reserve(c.layout.escapes);
  constexpr int64_t kMaxEscapeQ = int64_t(1) << 31;
  uint64_t idx = 0;
  for (uint32_t e = 0; e < c.layout.escapes; ++e) {
    const uint64_t delta = r.varint("escape index");
    if (delta >= N || (e > 0 && idx + 1 + delta >= N)) r.fail("escape index out of range");
    idx = e == 0 ? delta : idx + 1 + delta;
    const int64_t q = unzigzag(r.varint("escape value"));
    if (q >= kMaxEscapeQ || q <= -kMaxEscapeQ) r.fail("escape value out of range");
    c.esc_index.push_back(uint32_t(idx));
    c.esc_q.push_back(int32_t(q));
  }
  if (r.pos != c.layout.escape_end) r.fail("escape list length mismatch");
  check_token_ids(c.layout, profile);  // token-table blob: ids index the profile's table
  return c;
}

LevelLanes build_level_lanes(const Profile& p, int level) {
  LevelDecodeTables t = build_decode_tables(p, level);  // validates level
  const ProfileLevel& L = p.levels[size_t(level)];
  LevelLanes out;
  out.scale_bits = uint32_t(t.scale_bits);
  out.slots = std::move(t.slots);
  out.lanes.resize(size_t(t.lanes));
  for (int k = 0; k < t.lanes; ++k)
    out.lanes[size_t(k)] = LaneParam{p.mean[size_t(k)], L.step[size_t(k)], L.q_min[size_t(k)],
                                     uint32_t(L.tables[size_t(k)].freq.size() - 1)};
  return out;
}

void rope_cs_rows(float theta, int head_dim, uint32_t pos0, uint32_t n, bool inverse, float* out) {
  if (head_dim <= 0 || head_dim % 2) throw std::invalid_argument("rope_cs_rows: head_dim must be even");
  const int half = head_dim / 2;
  for (uint32_t r = 0; r < n; ++r) {
    const int pos = int(pos0) + static_cast<int>(r);  // as rope_rotate_rows: int(first_pos) + r
    for (int i = 0; i < head_dim; i += 2) {           // exactly rope_rotate_rows()'s expressions
      const float freq = 1.0f / powf(theta, i / static_cast<float>(head_dim));
      const float val = pos * freq;
      float* o = out + (size_t(r) * half + size_t(i / 2)) * 2;
      o[0] = cosf(val);
      o[1] = inverse ? -sinf(val) : sinf(val);
    }
  }
}

uint32_t check_dest_fits(const BlobHeader& h, const KvDest& dst) {
  if (h.method == Method::Text)
    throw std::invalid_argument("decoder: a text chunk carries token ids, not K/V (recompute it with the model)");
  if (!(h.shape == dst.shape)) throw std::invalid_argument("decoder: blob's model shape differs from the destination");
  if (h.first_pos < dst.pos_base || uint64_t(h.first_pos - dst.pos_base) + h.tokens > dst.capacity)
    throw std::invalid_argument("decoder: chunk positions [" + std::to_string(h.first_pos) + ", " +
                                std::to_string(uint64_t(h.first_pos) + h.tokens) +
                                ") fall outside the destination rows [" + std::to_string(dst.pos_base) +
                                ", " + std::to_string(uint64_t(dst.pos_base) + dst.capacity) + ")");
  return h.first_pos - dst.pos_base;
}

void decode_quant_emulated(std::span<const uint8_t> blob, const Profile& profile, const KvDest& dst) {
  dst.validate();
  if (dst.on_device) throw std::invalid_argument("decode_quant_emulated: destination must be host memory");
  const BlobHeader h = parse_blob_header(blob);
  const uint32_t row0 = check_dest_fits(h, dst);
  const PreparedQuantChunk pc = prepare_quant_chunk(blob, h, profile, profile.hash());
  const LevelLanes lv = build_level_lanes(profile, h.level);
  const uint32_t d = uint32_t(h.shape.kv_dim());
  std::vector<float> scratch, cs;
  const bool rope = !dst.keys_pre_rope;
  if (rope) {
    scratch.resize(size_t(h.shape.n_layers) * h.tokens * d);
    cs.resize(size_t(h.tokens) * h.shape.head_dim);
    rope_cs_rows(dst.rope_theta, h.shape.head_dim, h.first_pos, h.tokens, false, cs.data());
  }
  std::vector<void*> base;
  for (int l = 0; l < h.shape.n_layers; ++l) base.push_back(dst.k[size_t(l)]), base.push_back(dst.v[size_t(l)]);
  uint32_t status[2] = {0, 0};
  HdChunk c;
  c.data = blob.data();
  c.offset = pc.layout.offset.data();
  c.final_state = pc.layout.final_state.data();
  c.esc_index = pc.esc_index.data();
  c.esc_q = pc.esc_q.data();
  c.escapes = pc.layout.escapes;
  c.streams = pc.layout.streams;
  c.values = uint32_t(pc.layout.values);
  c.first_block = pc.layout.skip_values ? 2u : 0u;
  c.tokens = pc.layout.tokens.data();
  c.token_kv = profile.token_kv.data();
  c.block = uint32_t(h.tokens) * d;
  c.kv_dim = d;
  c.head_dim = uint32_t(h.shape.head_dim);
  c.n_layers = uint32_t(h.shape.n_layers);
  c.dst_row0 = row0;
  c.k_scratch = scratch.data();
  c.rope_cs = cs.data();
  c.status = status;
  const HdLevel L{lv.slots.data(), lv.lanes.data(), lv.scale_bits};
  const HdOut o{base.data(), hd_dtype(dst.dtype), rope ? 1u : 0u};
  // Kernel 1: one thread per stream.
  for (uint32_t st = 0; st < c.streams; ++st) decode_stream_hd(c, L, o, st);
  // Kernel 1b: one thread per layer-0 value of a token-table blob.
  for (uint32_t i = 0; i < token_values_hd(c); ++i) fill_token_value_hd(c, o, i);
  // Kernel 2: one thread per key pair (only when keys are rotated).
  if (rope)
    for (uint32_t p = 0; p < key_pairs_hd(c); ++p) finish_key_pair_hd(c, o, p);
  check_chunk_status(status, pc.layout.escapes, 0);
}

void check_chunk_status(const uint32_t* status, uint32_t escapes, size_t blob_index) {
  const std::string which = "blob " + std::to_string(blob_index) + ": ";
  if (status[0] & kHdBadStream) throw CorruptBlob(which + "chunk blob: a rANS stream does not end cleanly");
  if (status[0] & kHdBadEscape) throw CorruptBlob(which + "chunk blob: escape symbol at an index not in the escape list");
  if (status[1] != escapes)
    throw CorruptBlob(which + "chunk blob: escape count mismatch (" + std::to_string(status[1]) + " decoded, " +
                      std::to_string(escapes) + " listed)");
}

}  // namespace kvstream::codec
