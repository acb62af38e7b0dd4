// The pre-format-3 CPU decoder, for `bench codec` (bench_reference.h).
#include "bench/bench_reference.h"

#include <stdexcept>

#include "codec/chunk_v2.h"
#include "codec/half.h"
#include "codec/rope.h"

namespace kvstream::codec {

ReferenceCpuDecoder::ReferenceCpuDecoder(const Profile& p) : profile_(p), tables_(p.levels.size()) {}

// decode_chunk() of a format-2 Quant blob, as it was.
void ReferenceCpuDecoder::decode_chunk_v2(std::span<const uint8_t> blob, KvCache& out, const LevelDecodeTables* tables,
                                          uint32_t pos_base) {
  const BlobHeader h = parse_blob_header(blob);
  if (h.method != Method::Quant || h.version >= 3) throw std::invalid_argument("reference decoder: format-2 quant blobs only");
  if (!(out.shape == h.shape)) throw CorruptBlob("chunk blob: model shape differs from the output cache");
  const size_t T = h.tokens, d = h.shape.kv_dim();
  if (h.first_pos < pos_base || out.num_tokens() < h.first_pos - pos_base + T)
    throw CorruptBlob("chunk blob: positions outside the output cache");
  const size_t row0 = h.first_pos - pos_base;
  std::vector<float*> dst;
  for (int l = 0; l < h.shape.n_layers; ++l) {
    dst.push_back(out.k[size_t(l)].data() + row0 * d);
    dst.push_back(out.v[size_t(l)].data() + row0 * d);
  }
  if (h.profile_hash != tables->profile_hash) throw CorruptBlob("chunk blob: made with another profile (hash mismatch)");
  const QuantLayout lay = parse_quant_layout(blob, h);
  if (lay.skip_values) fill_token_layer_v2(lay, profile_, dst.data(), d);
  decode_quant_v2(blob, h, lay, *tables, dst.data(), nullptr);
  for (size_t t = 0; t < lay.tokens.size(); ++t) out.tokens[row0 + t] = lay.tokens[t];
  if (!out.keys_pre_rope) {
    std::vector<float*> keys;
    for (int l = 0; l < h.shape.n_layers; ++l) keys.push_back(dst[2 * size_t(l)]);
    rope_rotate_rows(keys.data(), h.shape.n_layers, T, h.shape.n_kv_heads, h.shape.head_dim, int(h.first_pos),
                     out.rope_theta, false);
  }
}

// CpuDecoder::submit of one blob, as it was.
void ReferenceCpuDecoder::decode(std::span<const uint8_t> blob, const KvDest& dst) {
  dst.validate();
  if (dst.on_device || dst.paged() || !dst.heads_packed() || dst.token_stride_bytes() != size_t(dst.shape.kv_dim()) * dst.elem_bytes())
    throw std::invalid_argument("reference decoder: contiguous packed host rows only");
  const BlobHeader h = parse_blob_header(blob);
  const uint32_t row0 = check_dest_fits(h, dst);
  if (h.level >= tables_.size()) throw CorruptBlob("chunk blob: level not in profile");
  if (!tables_[h.level]) tables_[h.level] = std::make_unique<LevelDecodeTables>(build_decode_tables(profile_, h.level));
  if (!(scratch_.shape == dst.shape) || scratch_.keys_pre_rope != dst.keys_pre_rope || scratch_.rope_theta != dst.rope_theta)
    scratch_ = KvCache(dst.shape, "", dst.rope_theta, dst.keys_pre_rope);
  scratch_.resize(h.tokens);
  decode_chunk_v2(blob, scratch_, tables_[h.level].get(), h.first_pos);
  const size_t d = size_t(dst.shape.kv_dim()), n = size_t(h.tokens) * d, off = size_t(row0) * d;
  for (int l = 0; l < dst.shape.n_layers; ++l)
    for (int kind = 0; kind < 2; ++kind) {
      const float* src = kind == 0 ? scratch_.k[size_t(l)].data() : scratch_.v[size_t(l)].data();
      void* base = kind == 0 ? dst.k[size_t(l)] : dst.v[size_t(l)];
      switch (dst.dtype) {
        case Dtype::F32: std::copy(src, src + n, static_cast<float*>(base) + off); break;
        case Dtype::F16: f32_to_f16(src, static_cast<uint16_t*>(base) + off, n); break;
        case Dtype::BF16: f32_to_bf16(src, static_cast<uint16_t*>(base) + off, n); break;
      }
    }
}

}  // namespace kvstream::codec
