// Blob formats 1 and 2, Quant body (chunk_v2.h): the layout kvstream wrote before format 3.
#include "codec/chunk_v2.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <string>

namespace kvstream::codec {
void encode_quant_v2(std::vector<uint8_t>& out, const QuantSymbols& qs, const ProfileLevel& L,
                     const EncodeOptions& opt) {
  const size_t N = qs.sym.size() - qs.skip;
  size_t S = std::max<size_t>(1, (N + opt.symbols_per_stream - 1) / std::max(1, opt.symbols_per_stream));
  S = std::max<size_t>(S, (N + 32766) / 32767);
  if (S > 65535) throw std::invalid_argument("encode_chunk: chunk too large (over 65535 streams)");
  std::vector<uint32_t> state(S);
  std::vector<std::vector<uint8_t>> data(S);
  RansEncoder enc;
  for (size_t st = 0; st < S; ++st) {
    enc.reset();
    const size_t count = (N - st + S - 1) / S;
    for (size_t j = count; j-- > 0;) {
      const size_t v = qs.skip + j * S + st;
      const RansTable& t = L.tables[qs.lane[v]];
      enc.put(t.cum[qs.sym[v]], t.freq[qs.sym[v]], L.scale_bits);
    }
    state[st] = enc.finish(data[st]);
  }
  ByteWriter w{out};
  w.u16(uint16_t(S));
  for (size_t st = 0; st < S; ++st) w.u32(state[st]), w.u16(uint16_t(data[st].size() / 2));
  put_escapes(w, qs, L, N, [&](size_t i) { return qs.skip + i; });
  for (auto& dd : data) w.bytes(dd.data(), dd.size());
}

namespace {

// Bytes taken by the first `count` varints of `b` (each ends at its first byte below 0x80): whole
// 8-byte words while the count stays ahead of their end bytes, then byte by byte. Only the
// length: the values (and over-long varints) are checked where they are read (parse_escapes).
size_t varints_length(std::span<const uint8_t> b, uint64_t count, const char* what) {
  size_t i = 0;
  for (uint64_t w; i + 8 <= b.size(); i += 8) {
    std::memcpy(&w, b.data() + i, 8);
    const uint64_t ends = uint64_t(std::popcount(~w & 0x8080808080808080ull));
    if (ends >= count) break;
    count -= ends;
  }
  for (; count && i < b.size(); ++i) count -= b[i] < 0x80;
  if (count) throw CorruptBlob(std::string("chunk blob: truncated reading ") + what);
  return i;
}

}  // namespace

void read_escapes_and_data(ByteReader<CorruptBlob>& r, QuantLayout& lay, uint64_t data_bytes) {
  const uint64_t esc = r.varint("escape count");
  if (esc > lay.values) r.fail("escape count exceeds values");
  lay.escapes = uint32_t(esc);
  lay.escape_offset = r.pos;
  r.pos += varints_length(r.data.subspan(r.pos), 2 * uint64_t(lay.escapes), "escape list");
  lay.escape_end = r.pos;
  if (data_bytes != r.left())
    r.fail("stream data is " + std::to_string(r.left()) + " bytes, directory says " + std::to_string(data_bytes));
  size_t off = r.pos;
  const size_t n = lay.offset.size() - 1;
  for (size_t k = 0; k < n; ++k) {
    const size_t words = lay.offset[k + 1];
    lay.offset[k] = uint32_t(off);
    off += 2 * words;
  }
  lay.offset[n] = uint32_t(off);
}

void parse_quant_layout_v2(ByteReader<CorruptBlob>& r, const BlobHeader& h, QuantLayout& lay) {
  if (h.flags & kBlobFlagTokenLayer) {
    lay.tokens.resize(h.tokens);  // bounded by the u16 header field
    for (auto& id : lay.tokens) {
      const uint64_t v = r.varint("token id");
      if (v > 0x7FFFFFFF) r.fail("token id out of range");
      id = int32_t(v);
    }
  }
  const size_t directory_at = r.pos;
  lay.streams = r.u16("stream count");
  if (lay.streams == 0) r.fail("zero streams");
  if ((lay.values + lay.streams - 1) / lay.streams > 32767) r.fail("streams too long");
  r.need(size_t(lay.streams) * 6, "stream directory");
  lay.final_state.resize(lay.streams);
  lay.offset.resize(lay.streams + 1);
  uint64_t total = 0;
  for (uint32_t k = 0; k < lay.streams; ++k) {
    lay.final_state[k] = r.u32("final state");
    lay.offset[k + 1] = r.u16("stream words");  // word counts for now; offsets below
    if (lay.final_state[k] < kRansL) r.fail("final state below L");
    total += 2ull * lay.offset[k + 1];
  }
  read_escapes_and_data(r, lay, total);
  lay.side_info_bytes = kBlobHeaderBytes + 2 + 6ull * lay.streams +
                        (lay.escape_offset - (directory_at + 2 + 6ull * lay.streams)) + kBlobTrailerBytes;
}

void fill_token_layer_v2(const QuantLayout& lay, const Profile& p, float* const* dst, size_t d) {
  check_token_ids(lay, p);
  for (size_t t = 0; t < lay.tokens.size(); ++t) {
    const uint32_t id = uint32_t(lay.tokens[t]);
    std::memcpy(dst[0] + t * d, p.token_row(id, 0), d * sizeof(float));
    std::memcpy(dst[1] + t * d, p.token_row(id, 1), d * sizeof(float));
  }
}

void decode_quant_v2(std::span<const uint8_t> blob, const BlobHeader& h, const QuantLayout& lay,
                     const LevelDecodeTables& t, float* const* dst, double* ideal) {
  const KvShape& s = h.shape;
  const size_t d = s.kv_dim(), block = size_t(h.tokens) * d, N = lay.values, S = lay.streams;
  const size_t skip = lay.skip_values;  // a multiple of block
  const uint32_t M = uint32_t(t.scale_bits);
  std::vector<RansDecoder> dec(S);
  for (size_t st = 0; st < S; ++st)
    dec[st] = RansDecoder{lay.final_state[st], blob.data() + lay.offset[st],
                          blob.data() + lay.offset[st + 1], 0};
  uint64_t escapes = 0;
  double bits = 0;
  // Walk coded values in chunk order; stream st = i % S advances in lockstep with the others.
  size_t st = 0, c = 0, b = skip / block, off = 0;
  const uint32_t* slots = t.slots.data();
  const float* value = t.value.data();
  for (size_t i = 0; i < N; ++i) {
    const size_t lane = b * d + c;
    if (ideal)  // -log2(f / 2^M) of the symbol about to be decoded
      bits += M - std::log2(double(slots[(lane << M) | (dec[st].x & ((1u << M) - 1))] & 0xFFF));
    const uint32_t sym = rans_decode_step(dec[st], slots + (lane << M), M);
    const float v = value[lane * 256 + sym];
    dst[b][off] = v;
    escapes += v != v;  // only the escape symbol maps to NaN
    if (++st == S) st = 0;
    if (++c == d) c = 0;
    if (++off == block) off = 0, c = 0, ++b;
  }
  for (size_t k = 0; k < S; ++k)
    if (!rans_decoder_ok(dec[k]))
      throw CorruptBlob("chunk blob: rANS stream " + std::to_string(k) + " does not end cleanly");
  if (escapes != lay.escapes)
    throw CorruptBlob("chunk blob: escape count mismatch (" + std::to_string(escapes) + " decoded, " +
                      std::to_string(lay.escapes) + " listed)");
  std::vector<uint32_t> esc_index;
  std::vector<int32_t> esc_q;
  parse_escapes(blob, lay, esc_index, esc_q);
  for (uint32_t e = 0; e < lay.escapes; ++e) {
    const size_t bb = (skip + esc_index[e]) / block, o = (skip + esc_index[e]) % block, lane = bb * d + o % d;
    float& slot = dst[bb][o];
    if (!std::isnan(slot)) throw CorruptBlob("chunk blob: escape at a position that is not an escape symbol");
    slot = t.mean[lane] + t.step[lane] * float(esc_q[e]);
  }
  if (ideal) *ideal = bits;
}

}  // namespace kvstream::codec
