// chunk_v2.h (internal): the Quant body of blob formats 1 and 2 — one rANS state per stream, coded
// value i in stream i mod S, token ids as varints (docs/FORMAT.md, "format 2"). Kept so that the
// decoder still reads blobs written before format 3, and so that `bench codec` can run the previous
// CPU decoder as its side-by-side reference (bench/bench_reference.h). Written only on request
// (EncodeOptions::blob_version = 2).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "codec/bytes.h"
#include "codec/chunk_codec.h"

namespace kvstream::codec {

// A chunk's values quantized with a profile level, in chunk order (value v = ((layer * 2 + kind) *
// tokens + t) * kv_dim + channel): table symbol, lane, and the quantized value itself (what an
// escape symbol, table size - 1, carries). Shared by the format-2 and format-3 writers.
struct QuantSymbols {
  std::vector<uint8_t> sym;
  std::vector<uint32_t> lane;
  std::vector<int32_t> q;
  size_t skip = 0;  // leading values not coded (token-table layer 0)
};

// The escape list (both formats): count, then per escaped coded value i (its table's last symbol)
// the index delta and zigzag(q); chunk_index(i) = chunk value index of coded value i.
template <class ChunkIndex>
void put_escapes(ByteWriter& w, const QuantSymbols& qs, const ProfileLevel& L, size_t coded, ChunkIndex chunk_index) {
  std::vector<std::pair<uint64_t, int64_t>> esc;
  for (size_t i = 0; i < coded; ++i) {
    const size_t v = chunk_index(i);
    if (qs.sym[v] == L.tables[qs.lane[v]].freq.size() - 1) esc.emplace_back(i, qs.q[v]);
  }
  w.varint(esc.size());
  uint64_t prev = 0;
  for (size_t e = 0; e < esc.size(); ++e) {
    w.varint(e == 0 ? esc[e].first : esc[e].first - prev - 1);
    w.varint(zigzag(esc[e].second));
    prev = esc[e].first;
  }
}
// Both formats after their directory: the escape count and list (skipped: parse_escapes reads it),
// then the word data, which must be `data_bytes` long; turns lay.offset[k + 1] (each stream's or
// group's word count, as the directory parse left it) into byte offsets of the data.
void read_escapes_and_data(ByteReader<CorruptBlob>& r, QuantLayout& lay, uint64_t data_bytes);

// Writes the format-2 body after the token ids: stream directory, escapes, stream data.
void encode_quant_v2(std::vector<uint8_t>& out, const QuantSymbols& qs, const ProfileLevel& L,
                     const EncodeOptions& opt);
// Parses the format-2 body (r at its first byte: the token ids of a token-table blob) into lay.
void parse_quant_layout_v2(ByteReader<CorruptBlob>& r, const BlobHeader& h, QuantLayout& lay);
// Layer 0 of a format-2 token-table blob into float blocks dst[0] (K, pre-RoPE) and dst[1] (V):
// each token's rows from the profile's table (check_token_ids first).
void fill_token_layer_v2(const QuantLayout& lay, const Profile& p, float* const* dst, size_t kv_dim);
// The format-2 decode loop: coded values into dst[block] (chunk order within each (layer, kind)
// block; keys pre-RoPE), escapes patched from the list; *ideal gets -sum log2 p if given.
// Throws CorruptBlob on any inconsistency.
void decode_quant_v2(std::span<const uint8_t> blob, const BlobHeader& h, const QuantLayout& lay,
                     const LevelDecodeTables& t, float* const* dst, double* ideal);

}  // namespace kvstream::codec
