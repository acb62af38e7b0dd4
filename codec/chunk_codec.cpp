// Chunk blobs: layout in docs/FORMAT.md. Quant decode is the hot path (see decode_quant).
#include "codec/chunk_codec.h"

#include <zstd.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "codec/bytes.h"
#include "codec/crc32c.h"
#include "codec/half.h"
#include "codec/rope.h"

namespace kvstream::codec {
namespace {

using Reader = ByteReader<CorruptBlob>;
constexpr uint8_t kMagic0 = 'K', kMagic1 = 'B';
constexpr int64_t kMaxEscapeQ = int64_t(1) << 31;

size_t chunk_values(const KvShape& s, size_t tokens) { return 2ull * s.n_layers * tokens * s.kv_dim(); }

// Pointers to each (layer, kind) block's first row of the chunk inside a cache: block b = l*2+kind.
std::vector<float*> block_bases(KvCache& kv, size_t first_row) {
  std::vector<float*> b;
  const size_t off = first_row * kv.shape.kv_dim();
  for (int l = 0; l < kv.shape.n_layers; ++l) {
    b.push_back(kv.k[l].data() + off);
    b.push_back(kv.v[l].data() + off);
  }
  return b;
}

// The chunk's values in chunk order, keys pre-RoPE (pre=true) or post-RoPE.
std::vector<float> gather(const KvCache& kv, size_t begin, size_t end, uint32_t pos0, bool pre) {
  const KvShape& s = kv.shape;
  const size_t T = end - begin, d = s.kv_dim(), block = T * d;
  std::vector<float> x(chunk_values(s, T));
  std::vector<float*> keys;
  for (int l = 0; l < s.n_layers; ++l) {
    std::memcpy(&x[(l * 2) * block], kv.k[l].data() + begin * d, block * sizeof(float));
    std::memcpy(&x[(l * 2 + 1) * block], kv.v[l].data() + begin * d, block * sizeof(float));
    keys.push_back(&x[(l * 2) * block]);
  }
  if (kv.keys_pre_rope != pre)
    rope_rotate_rows(keys.data(), s.n_layers, T, s.n_kv_heads, s.head_dim, int(pos0), kv.rope_theta,
                     /*inverse=*/pre);
  for (float v : x)
    if (!std::isfinite(v)) throw std::invalid_argument("encode_chunk: non-finite K/V value");
  return x;
}

void put_header(std::vector<uint8_t>& out, Method m, int level, uint8_t flags, const KvShape& s,
                size_t T, uint32_t pos0, uint64_t hash) {
  ByteWriter w{out};
  w.u8(kMagic0), w.u8(kMagic1), w.u8(kBlobVersion), w.u8(uint8_t(m));
  w.u8(uint8_t(level)), w.u8(flags);
  w.u16(uint16_t(s.n_layers)), w.u16(uint16_t(s.n_kv_heads)), w.u16(uint16_t(s.head_dim));
  w.u16(uint16_t(T)), w.u16(0);
  w.u32(pos0);
  w.u64(hash);
}

// True when the profile's token table reproduces layer 0 of the chunk (x: pre-RoPE chunk values)
// within half of each lane's step at `level`, i.e. no worse than quantizing it would.
bool token_table_fits(const KvCache& kv, size_t begin, size_t T, const std::vector<float>& x,
                      const Profile& p, int level) {
  if (!p.has_token_table() || p.shape.n_layers < 2) return false;
  const size_t d = p.shape.kv_dim();
  const ProfileLevel& L = p.levels[size_t(level)];
  for (size_t t = 0; t < T; ++t) {
    const int32_t id = kv.tokens[begin + t];
    if (id < 0 || uint32_t(id) >= p.token_vocab) return false;
    for (int kind = 0; kind < 2; ++kind) {
      const float* row = p.token_row(uint32_t(id), kind);
      for (size_t c = 0; c < d; ++c) {
        const size_t lane = size_t(kind) * d + c;  // layer 0
        if (!(std::abs(double(x[(size_t(kind) * T + t) * d + c]) - row[c]) <= 0.5 * L.step[lane]))
          return false;
      }
    }
  }
  return true;
}

// Codes chunk values x[skip..] (value index v = skip + coded index i).
void encode_quant(std::vector<uint8_t>& out, const std::vector<float>& x, size_t skip, const KvShape& s,
                  size_t T, const Profile& p, int level, const EncodeOptions& opt) {
  const ProfileLevel& L = p.levels.at(level);
  const size_t N = x.size() - skip, d = s.kv_dim(), block = T * d;
  std::vector<uint8_t> sym(N);
  std::vector<uint32_t> lane_of_idx(N);
  std::vector<std::pair<uint64_t, int64_t>> esc;
  for (size_t i = 0; i < N; ++i) {
    const size_t v = skip + i, lane = (v / block) * d + v % d;
    lane_of_idx[i] = static_cast<uint32_t>(lane);
    const double qd = std::nearbyint((double(x[v]) - p.mean[lane]) / L.step[lane]);
    if (!(std::abs(qd) < double(kMaxEscapeQ)))
      throw std::invalid_argument("encode_chunk: value too far outside the profile's range");
    const int64_t q = int64_t(qd) - L.q_min[lane];
    const int64_t n = int64_t(L.tables[lane].freq.size());
    if (q >= 0 && q < n - 1) {
      sym[i] = uint8_t(q);
    } else {
      sym[i] = uint8_t(n - 1);
      esc.emplace_back(i, int64_t(qd));
    }
  }
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
      const size_t i = j * S + st;
      const RansTable& t = L.tables[lane_of_idx[i]];
      enc.put(t.cum[sym[i]], t.freq[sym[i]], L.scale_bits);
    }
    state[st] = enc.finish(data[st]);
  }
  ByteWriter w{out};
  w.u16(uint16_t(S));
  for (size_t st = 0; st < S; ++st) w.u32(state[st]), w.u16(uint16_t(data[st].size() / 2));
  w.varint(esc.size());
  uint64_t prev = 0;
  for (size_t e = 0; e < esc.size(); ++e) {
    w.varint(e == 0 ? esc[e].first : esc[e].first - prev - 1);
    w.varint(zigzag(esc[e].second));
    prev = esc[e].first;
  }
  for (auto& dd : data) w.bytes(dd.data(), dd.size());
}

void encode_q(std::vector<uint8_t>& out, const std::vector<float>& x, size_t d, int bits) {
  const int qmax = bits == 8 ? 127 : 7;
  const size_t rows = x.size() / d;
  std::vector<float> scale(rows);
  ByteWriter w{out};
  for (size_t r = 0; r < rows; ++r) {
    float amax = 0;
    for (size_t c = 0; c < d; ++c) amax = std::max(amax, std::abs(x[r * d + c]));
    const uint16_t h = f32_to_f16(amax / float(qmax));
    if (!std::isfinite(f16_to_f32(h))) throw std::invalid_argument("encode_chunk: value beyond fp16 range");
    w.u16(h);
    scale[r] = f16_to_f32(h);
  }
  auto q_of = [&](size_t i) -> int {
    const float sc = scale[i / d];
    if (sc == 0) return 0;
    return int(std::clamp(std::nearbyint(x[i] / sc), float(-qmax), float(qmax)));
  };
  if (bits == 8) {
    for (size_t i = 0; i < x.size(); ++i) w.u8(uint8_t(int8_t(q_of(i))));
  } else {
    for (size_t i = 0; i < x.size(); i += 2) {
      const int a = q_of(i) + 7, b = i + 1 < x.size() ? q_of(i + 1) + 7 : 7;
      w.u8(uint8_t(a | b << 4));
    }
  }
}

// ---- decoding ----

// Decodes a Quant body into `dst` blocks (chunk order within each block); returns the ideal bits
// if `ideal` is set. Throws CorruptBlob on any inconsistency.
void decode_quant(std::span<const uint8_t> blob, const BlobHeader& h, const QuantLayout& lay,
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
  Reader r{blob.subspan(0, lay.escape_end), lay.escape_offset, "chunk blob"};
  uint64_t idx = 0;
  for (uint32_t e = 0; e < lay.escapes; ++e) {
    const uint64_t delta = r.varint("escape index");
    if (delta >= N || (e > 0 && idx + 1 + delta >= N)) r.fail("escape index out of range");
    idx = e == 0 ? delta : idx + 1 + delta;
    const int64_t q = unzigzag(r.varint("escape value"));
    if (q >= kMaxEscapeQ || q <= -kMaxEscapeQ) r.fail("escape value out of range");
    const size_t bb = (skip + idx) / block, o = (skip + idx) % block, lane = bb * d + o % d;
    float& slot = dst[bb][o];
    if (!std::isnan(slot)) r.fail("escape at a position that is not an escape symbol");
    slot = t.mean[lane] + t.step[lane] * float(q);
  }
  if (r.pos != lay.escape_end) r.fail("escape list length mismatch");
  if (ideal) *ideal = bits;
}

// Layer 0 of a token-table blob: each token's K (pre-RoPE) and V rows copied from the profile.
void fill_token_layer(const QuantLayout& lay, const Profile& p, float* const* dst, size_t d) {
  check_token_ids(lay, p);
  for (size_t t = 0; t < lay.tokens.size(); ++t) {
    const uint32_t id = uint32_t(lay.tokens[t]);
    std::memcpy(dst[0] + t * d, p.token_row(id, 0), d * sizeof(float));
    std::memcpy(dst[1] + t * d, p.token_row(id, 1), d * sizeof(float));
  }
}

}  // namespace

void check_token_ids(const QuantLayout& lay, const Profile& p) {
  if (!lay.skip_values) return;
  if (!p.has_token_table()) throw CorruptBlob("chunk blob: needs a token table the profile does not have");
  for (int32_t id : lay.tokens)
    if (uint32_t(id) >= p.token_vocab)
      throw CorruptBlob("chunk blob: token id " + std::to_string(id) + " outside the profile's vocabulary (" +
                        std::to_string(p.token_vocab) + ")");
}

const char* method_name(Method m) {
  switch (m) {
    case Method::Quant: return "quant";
    case Method::Fp16: return "fp16";
    case Method::Q8: return "q8";
    case Method::Q4: return "q4";
    case Method::ZstdFp16: return "zstd-fp16";
    case Method::Text: return "text";
  }
  return "?";
}

Method parse_method(const std::string& s) {
  for (Method m : {Method::Quant, Method::Fp16, Method::Q8, Method::Q4, Method::ZstdFp16, Method::Text})
    if (s == method_name(m)) return m;
  throw std::invalid_argument("unknown codec method '" + s + "'");
}

BlobHeader parse_blob_header(std::span<const uint8_t> blob) {
  Reader r{blob, 0, "chunk blob"};
  if (blob.size() < kBlobHeaderBytes + kBlobTrailerBytes)
    r.fail("too short (" + std::to_string(blob.size()) + " bytes)");
  Reader tail{blob, blob.size() - 4, "chunk blob"};
  if (tail.u32("crc") != crc32c(blob.data(), blob.size() - 4)) r.fail("CRC32C mismatch");
  if (r.u8("magic") != kMagic0 || r.u8("magic") != kMagic1) r.fail("bad magic");
  const uint8_t ver = r.u8("version");
  if (ver != kBlobVersion && ver != 1) r.fail("unsupported version " + std::to_string(ver));
  BlobHeader h;
  const uint8_t m = r.u8("method");
  if (m < 1 || m > 6) r.fail("unknown method " + std::to_string(m));
  h.method = Method(m);
  h.level = r.u8("level");
  h.flags = r.u8("flags");
  if (ver == 1 && h.flags != 0) r.fail("version 1 blob with flags set");
  if (h.flags & ~kBlobFlagTokenLayer) r.fail("unknown flags " + std::to_string(h.flags));
  if (h.flags && h.method != Method::Quant) r.fail("flags set on a baseline blob");
  h.shape.n_layers = r.u16("n_layers");
  h.shape.n_kv_heads = r.u16("n_kv_heads");
  h.shape.head_dim = r.u16("head_dim");
  h.tokens = r.u16("tokens");
  if (r.u16("reserved") != 0) r.fail("reserved field not zero");
  h.first_pos = r.u32("first_pos");
  h.profile_hash = r.u64("profile_hash");
  if (h.shape.n_layers == 0 || h.shape.n_kv_heads == 0 || h.shape.head_dim == 0 ||
      h.shape.head_dim % 2 || h.shape.head_dim > 1024)
    r.fail("bad shape");
  if (h.tokens == 0) r.fail("empty chunk");
  if ((h.flags & kBlobFlagTokenLayer) && h.shape.n_layers < 2) r.fail("token-table blob of a 1-layer model");
  if (uint64_t(h.first_pos) + h.tokens > (1ull << 31)) r.fail("positions beyond 2^31");
  if (h.method != Method::Quant && (h.level != 0 || h.profile_hash != 0))
    r.fail("level/profile hash set on a baseline blob");
  return h;
}

QuantLayout parse_quant_layout(std::span<const uint8_t> blob, const BlobHeader& h) {
  Reader r{blob.first(blob.size() - kBlobTrailerBytes), kBlobHeaderBytes, "chunk blob"};
  QuantLayout lay;
  lay.values = chunk_values(h.shape, h.tokens);
  if (h.flags & kBlobFlagTokenLayer) {
    lay.skip_values = 2ull * h.tokens * h.shape.kv_dim();
    lay.values -= lay.skip_values;
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
  std::vector<uint32_t> words(lay.streams);
  uint64_t total = 0;
  for (uint32_t k = 0; k < lay.streams; ++k) {
    lay.final_state[k] = r.u32("final state");
    words[k] = r.u16("stream words");
    if (lay.final_state[k] < kRansL) r.fail("final state below L");
    total += 2ull * words[k];
  }
  const uint64_t esc = r.varint("escape count");
  if (esc > lay.values) r.fail("escape count exceeds values");
  lay.escapes = uint32_t(esc);
  lay.escape_offset = r.pos;
  for (uint32_t e = 0; e < lay.escapes; ++e) r.varint("escape index"), r.varint("escape value");
  lay.escape_end = r.pos;
  if (total != r.left())
    r.fail("stream data is " + std::to_string(r.left()) + " bytes, directory says " + std::to_string(total));
  lay.offset.resize(lay.streams + 1);
  size_t off = r.pos;
  for (uint32_t k = 0; k < lay.streams; ++k) lay.offset[k] = uint32_t(off), off += 2ull * words[k];
  lay.offset[lay.streams] = uint32_t(off);
  lay.side_info_bytes = kBlobHeaderBytes + 2 + 6ull * lay.streams +
                        (lay.escape_offset - (directory_at + 2 + 6ull * lay.streams)) + kBlobTrailerBytes;
  return lay;
}

std::vector<int32_t> text_tokens(std::span<const uint8_t> blob, const BlobHeader& h) {
  if (h.method != Method::Text) throw CorruptBlob("chunk blob: not a text blob");
  Reader r{blob.first(blob.size() - kBlobTrailerBytes), kBlobHeaderBytes, "chunk blob"};
  std::vector<int32_t> ids(h.tokens);  // bounded by the u16 header field
  for (auto& id : ids) {
    const uint64_t v = r.varint("token");
    if (v > 0x7FFFFFFF) r.fail("token id out of range");
    id = int32_t(v);
  }
  if (r.left()) r.fail("trailing bytes after tokens");
  return ids;
}

std::vector<uint8_t> encode_chunk(const KvCache& kv, size_t begin, size_t end, uint32_t pos0,
                                  Method method, const Profile* profile, int level,
                                  const EncodeOptions& opt) {
  kv.validate();
  if (begin >= end || end > kv.num_tokens() || end - begin > 65535)
    throw std::invalid_argument("encode_chunk: bad token range");
  const KvShape& s = kv.shape;
  if (s.n_layers > 65535 || s.n_kv_heads > 65535 || s.head_dim > 1024)
    throw std::invalid_argument("encode_chunk: shape too large");
  const size_t T = end - begin;
  std::vector<uint8_t> out;
  uint64_t hash = 0;
  uint8_t flags = 0;
  std::vector<float> pre;  // Quant: pre-RoPE chunk values
  if (method == Method::Quant) {
    if (!profile) throw std::invalid_argument("encode_chunk: quant levels need a profile");
    if (!(profile->shape == s)) throw std::invalid_argument("encode_chunk: profile is for another model shape");
    if (level < 0 || level >= int(profile->levels.size()))
      throw std::invalid_argument("encode_chunk: level not in profile");
    hash = opt.profile_hash ? opt.profile_hash : profile->hash();
    pre = gather(kv, begin, end, pos0, true);
    if (token_table_fits(kv, begin, T, pre, *profile, level)) flags |= kBlobFlagTokenLayer;
  } else {
    level = 0;
  }
  put_header(out, method, level, flags, s, T, pos0, hash);
  ByteWriter w{out};
  switch (method) {
    case Method::Quant: {
      size_t skip = 0;
      if (flags & kBlobFlagTokenLayer) {
        for (size_t t = begin; t < end; ++t) w.varint(uint64_t(kv.tokens[t]));
        skip = 2 * T * s.kv_dim();
      }
      encode_quant(out, pre, skip, s, T, *profile, level, opt);
      break;
    }
    case Method::Fp16:
      for (float v : gather(kv, begin, end, pos0, false)) w.u16(f32_to_f16(v));
      break;
    case Method::Q8:
    case Method::Q4:
      encode_q(out, gather(kv, begin, end, pos0, false), s.kv_dim(), method == Method::Q8 ? 8 : 4);
      break;
    case Method::ZstdFp16: {
      std::vector<uint8_t> raw;
      ByteWriter rw{raw};
      for (float v : gather(kv, begin, end, pos0, false)) rw.u16(f32_to_f16(v));
      std::vector<uint8_t> z(ZSTD_compressBound(raw.size()));
      const size_t n = ZSTD_compress(z.data(), z.size(), raw.data(), raw.size(), opt.zstd_level);
      if (ZSTD_isError(n)) throw std::runtime_error(std::string("zstd: ") + ZSTD_getErrorName(n));
      w.bytes(z.data(), n);
      break;
    }
    case Method::Text:
      for (size_t t = begin; t < end; ++t) {
        if (kv.tokens[t] < 0) throw std::invalid_argument("encode_chunk: negative token id");
        w.varint(uint64_t(kv.tokens[t]));
      }
      break;
  }
  w.u32(crc32c(out.data(), out.size()));
  return out;
}

void decode_chunk(std::span<const uint8_t> blob, const Profile* profile, KvCache& out,
                  const LevelDecodeTables* tables, uint32_t pos_base) {
  const BlobHeader h = parse_blob_header(blob);
  if (!(out.shape == h.shape)) throw CorruptBlob("chunk blob: model shape differs from the output cache");
  const size_t T = h.tokens, N = chunk_values(h.shape, T), d = h.shape.kv_dim();
  if (h.first_pos < pos_base) throw CorruptBlob("chunk blob: starts before the output's first position");
  const size_t row0 = h.first_pos - pos_base, end_row = row0 + T;
  if (out.num_tokens() < end_row)
    throw CorruptBlob("chunk blob: positions " + std::to_string(h.first_pos) + ".." +
                      std::to_string(h.first_pos + T) + " outside the output cache");
  Reader r{blob.first(blob.size() - kBlobTrailerBytes), kBlobHeaderBytes, "chunk blob"};
  if (h.method == Method::Text) {
    const std::vector<int32_t> ids = text_tokens(blob, h);
    std::copy(ids.begin(), ids.end(), out.tokens.begin() + ptrdiff_t(row0));
    return;
  }
  std::vector<float*> dst = block_bases(out, row0);
  bool pre = false;  // convention of the keys just written
  switch (h.method) {
    case Method::Quant: {
      if (!profile) throw std::invalid_argument("decode_chunk: quant blob needs the profile");
      if (!(profile->shape == h.shape)) throw CorruptBlob("chunk blob: shape differs from profile");
      if (h.level >= profile->levels.size()) throw CorruptBlob("chunk blob: level not in profile");
      LevelDecodeTables own;
      if (!tables || tables->level != h.level) own = build_decode_tables(*profile, h.level), tables = &own;
      if (h.profile_hash != tables->profile_hash)
        throw CorruptBlob("chunk blob: made with another profile (hash mismatch)");
      const QuantLayout lay = parse_quant_layout(blob, h);
      if (lay.skip_values) fill_token_layer(lay, *profile, dst.data(), d);
      decode_quant(blob, h, lay, *tables, dst.data(), nullptr);
      for (size_t t = 0; t < lay.tokens.size(); ++t) out.tokens[row0 + t] = lay.tokens[t];
      pre = true;
      break;
    }
    case Method::Fp16:
    case Method::ZstdFp16: {
      std::vector<uint8_t> raw;
      const uint8_t* p;
      if (h.method == Method::Fp16) {
        p = r.take(N * 2, "fp16 values");
      } else {
        const size_t zn = r.left();
        const uint8_t* z = r.take(zn, "zstd frame");
        const unsigned long long want = ZSTD_getFrameContentSize(z, zn);
        if (want != N * 2) r.fail("zstd frame size mismatch");
        raw.resize(N * 2);
        const size_t got = ZSTD_decompress(raw.data(), raw.size(), z, zn);
        if (ZSTD_isError(got) || got != raw.size()) r.fail("zstd frame corrupt");
        p = raw.data();
      }
      for (size_t i = 0; i < N; ++i)
        dst[i / (T * d)][i % (T * d)] = f16_to_f32(uint16_t(p[2 * i] | p[2 * i + 1] << 8));
      break;
    }
    case Method::Q8:
    case Method::Q4: {
      const size_t rows = N / d;
      const uint8_t* sc = r.take(rows * 2, "scales");
      const bool q8 = h.method == Method::Q8;
      const uint8_t* q = r.take(q8 ? N : (N + 1) / 2, "quantized values");
      for (size_t i = 0; i < N; ++i) {
        const size_t row = i / d;
        const float scale = f16_to_f32(uint16_t(sc[2 * row] | sc[2 * row + 1] << 8));
        int v;
        if (q8) {
          v = int8_t(q[i]);
          if (v == -128) r.fail("q8 value -128");
        } else {
          v = int((q[i / 2] >> (4 * (i & 1))) & 0xF) - 7;
          if (v > 7) r.fail("q4 nibble 15");
        }
        if (!std::isfinite(scale)) r.fail("non-finite scale");
        dst[i / (T * d)][i % (T * d)] = scale * float(v);
      }
      break;
    }
    case Method::Text: break;
  }
  if (h.method != Method::Quant && r.left()) r.fail("trailing bytes");
  if (pre != out.keys_pre_rope) {
    std::vector<float*> keys;
    for (int l = 0; l < h.shape.n_layers; ++l) keys.push_back(dst[2 * l]);
    rope_rotate_rows(keys.data(), h.shape.n_layers, T, h.shape.n_kv_heads, h.shape.head_dim,
                     int(h.first_pos), out.rope_theta, /*inverse=*/!pre ? true : false);
  }
}

BlobStats blob_stats(std::span<const uint8_t> blob, const Profile* profile) {
  const BlobHeader h = parse_blob_header(blob);
  BlobStats st;
  st.bytes = blob.size();
  if (h.method != Method::Quant) {
    st.side_info_bytes = kBlobHeaderBytes + kBlobTrailerBytes;
    st.coded_bits = 8.0 * (blob.size() - st.side_info_bytes);
    st.ideal_bits = st.coded_bits;
    return st;
  }
  if (!profile || profile->hash() != h.profile_hash) throw CorruptBlob("blob_stats: profile mismatch");
  const QuantLayout lay = parse_quant_layout(blob, h);
  const LevelDecodeTables t = build_decode_tables(*profile, h.level);
  KvCache tmp(h.shape, "", profile->rope_theta, true);
  tmp.resize(h.tokens);
  std::vector<float*> dst = block_bases(tmp, 0);
  double bits = 0;
  decode_quant(blob, h, lay, t, dst.data(), &bits);
  st.ideal_bits = bits;
  st.side_info_bytes = lay.side_info_bytes;
  st.coded_bits = 8.0 * (lay.offset[lay.streams] - lay.offset[0]) + 32.0 * lay.streams;
  return st;
}

}  // namespace kvstream::codec
