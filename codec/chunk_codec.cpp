// Chunk blobs: layout in docs/FORMAT.md. The Quant decode hot path is codec/decode_engine.*;
// format 2's Quant body lives in chunk_v2.*.
#include "codec/chunk_codec.h"

#include <zstd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "codec/bytes.h"
#include "codec/chunk_v2.h"
#include "codec/crc32c.h"
#include "codec/decode_engine.h"
#include "codec/half.h"
#include "codec/rope.h"

namespace kvstream::codec {
namespace {

using Reader = ByteReader<CorruptBlob>;
constexpr uint8_t kMagic0 = 'K', kMagic1 = 'B';
constexpr int64_t kMaxEscapeQ = int64_t(1) << 31;

size_t chunk_values(const KvShape& s, size_t tokens) { return 2ull * s.n_layers * tokens * s.kv_dim(); }

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

void put_header(std::vector<uint8_t>& out, uint8_t version, Method m, int level, uint8_t flags, const KvShape& s,
                size_t T, uint32_t pos0, uint64_t hash) {
  ByteWriter w{out};
  w.u8(kMagic0), w.u8(kMagic1), w.u8(version), w.u8(uint8_t(m));
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

// Quantizes chunk values x (pre-RoPE) with the level's steps and tables (chunk order).
QuantSymbols quantize(const std::vector<float>& x, size_t skip, const KvShape& s, size_t T, const Profile& p, int level) {
  const ProfileLevel& L = p.levels.at(size_t(level));
  const size_t d = s.kv_dim(), block = T * d;
  QuantSymbols qs;
  qs.skip = skip;
  qs.sym.resize(x.size());
  qs.lane.resize(x.size());
  qs.q.resize(x.size());
  for (size_t v = skip; v < x.size(); ++v) {
    const size_t lane = (v / block) * d + v % d;
    qs.lane[v] = static_cast<uint32_t>(lane);
    const double qd = std::nearbyint((double(x[v]) - p.mean[lane]) / L.step[lane]);
    if (!(std::abs(qd) < double(kMaxEscapeQ)))
      throw std::invalid_argument("encode_chunk: value too far outside the profile's range");
    const int64_t q = int64_t(qd) - L.q_min[lane];
    const int64_t n = int64_t(L.tables[lane].freq.size());
    qs.sym[v] = (q >= 0 && q < n - 1) ? uint8_t(q) : uint8_t(n - 1);
    qs.q[v] = int32_t(qd);
  }
  return qs;
}

// Format 3's coded order (FORMAT.md section 2): order[i] = chunk value index of coded value i.
// Per coded block, channel groups of kRansLanes channels (the last narrower), token by token.
std::vector<uint32_t> coded_order(size_t T, size_t d, size_t first_block, size_t blocks) {
  std::vector<uint32_t> order;
  order.reserve((blocks - first_block) * T * d);
  for (size_t b = first_block; b < blocks; ++b)
    for (size_t c0 = 0; c0 < d; c0 += kRansLanes)
      for (size_t t = 0; t < T; ++t)
        for (size_t c = c0; c < std::min(d, c0 + kRansLanes); ++c) order.push_back(uint32_t((b * T + t) * d + c));
  return order;
}

// Token ids, bit-packed: u8 width B, then ceil(T * B / 8) bytes, id t in bits [t*B, (t+1)*B).
void put_token_ids(std::vector<uint8_t>& out, std::span<const int32_t> ids) {
  uint32_t max_id = 0;
  for (int32_t id : ids) max_id = std::max(max_id, uint32_t(id));
  const uint32_t bits = std::max<uint32_t>(1, uint32_t(std::bit_width(max_id)));
  out.push_back(uint8_t(bits));
  uint64_t acc = 0;
  uint32_t have = 0;
  for (int32_t id : ids) {
    acc |= uint64_t(uint32_t(id)) << have;
    for (have += bits; have >= 8; have -= 8, acc >>= 8) out.push_back(uint8_t(acc));
  }
  if (have) out.push_back(uint8_t(acc));
}

void read_token_ids(Reader& r, size_t T, std::vector<int32_t>& ids) {
  const uint32_t bits = r.u8("token id width");
  if (bits < 1 || bits > 31) r.fail("token id width " + std::to_string(bits));
  const size_t bytes = (T * bits + 7) / 8;
  const uint8_t* p = r.take(bytes, "token ids");
  ids.resize(T);
  uint64_t acc = 0;
  uint32_t have = 0;
  size_t at = 0;
  for (auto& id : ids) {
    while (have < bits) acc |= uint64_t(p[at++]) << have, have += 8;
    id = int32_t(acc & ((uint64_t(1) << bits) - 1));
    acc >>= bits, have -= bits;
  }
  if (acc != 0) r.fail("token id padding bits not zero");
}

// Writes format 3's Quant body after the token ids: groups of kRansLanes interleaved states over
// the coded values in coded order, the escape list, the groups' words.
void encode_quant_v3(std::vector<uint8_t>& out, const QuantSymbols& qs, const KvShape& s, size_t T,
                     const ProfileLevel& L, const EncodeOptions& opt) {
  const size_t N = qs.sym.size() - qs.skip, d = size_t(s.kv_dim());
  if (N >= (uint64_t(1) << 32)) throw std::invalid_argument("encode_chunk: chunk too large (2^32 coded values or more)");
  const std::vector<uint32_t> at = coded_order(T, d, qs.skip / (T * d), 2 * size_t(s.n_layers));
  const size_t rounds = (N + kRansLanes - 1) / kRansLanes;
  const size_t per_group = std::min<size_t>(rounds, std::max<size_t>(1, (size_t(std::max(1, opt.symbols_per_stream)) + kRansLanes - 1) / kRansLanes));
  const size_t groups = (rounds + per_group - 1) / per_group;
  std::vector<uint32_t> states(groups * kRansLanes);
  std::vector<std::vector<uint16_t>> rev(groups);
  for (size_t g = 0; g < groups; ++g) {
    uint32_t* x = states.data() + g * kRansLanes;
    std::fill(x, x + kRansLanes, kRansL);
    const size_t lo = g * per_group * kRansLanes, hi = std::min(N, (g + 1) * per_group * kRansLanes);
    for (size_t i = hi; i-- > lo;) {  // backwards: the decoder's word order reversed
      const size_t v = at[i];
      const RansTable& t = L.tables[qs.lane[v]];
      rans_encode_put(x[i % kRansLanes], rev[g], t.cum[qs.sym[v]], t.freq[qs.sym[v]], L.scale_bits);
    }
  }
  ByteWriter w{out};
  w.varint(groups);
  w.varint(per_group);
  for (size_t g = 0; g < groups; ++g) {
    for (size_t j = 0; j < kRansLanes; ++j) w.u32(states[g * kRansLanes + j]);
    w.varint(rev[g].size());
  }
  put_escapes(w, qs, L, N, [&](size_t i) { return size_t(at[i]); });
  for (const auto& r : rev)
    for (size_t k = r.size(); k-- > 0;) w.u16(r[k]);
}

// Format 3's body after the token ids (FORMAT.md section 2).
void parse_quant_layout_v3(Reader& r, const BlobHeader& h, QuantLayout& lay) {
  if (h.flags & kBlobFlagTokenLayer) read_token_ids(r, h.tokens, lay.tokens);
  else lay.tokens.clear();
  if (lay.values >= (uint64_t(1) << 32)) r.fail("too many values (2^32 or more)");
  const uint64_t rounds = (lay.values + kRansLanes - 1) / kRansLanes;
  const size_t directory_at = r.pos;
  const uint64_t groups = r.varint("group count"), per_group = r.varint("rounds per group");
  if (per_group == 0 || per_group > rounds) r.fail("rounds per group out of range");
  if (groups != (rounds + per_group - 1) / per_group) r.fail("group count does not match the rounds");
  r.need(groups * (4 * kRansLanes + 1), "group directory");  // bounds groups by the bytes present
  lay.streams = uint32_t(groups);
  lay.rounds_per_group = uint32_t(per_group);
  lay.final_state.resize(size_t(groups) * kRansLanes);
  lay.offset.resize(size_t(groups) + 1);
  uint64_t total = 0;
  for (uint64_t g = 0; g < groups; ++g) {
    for (uint32_t j = 0; j < kRansLanes; ++j) {
      const uint32_t x = r.u32("final state");
      if (x < kRansL) r.fail("final state below L");
      lay.final_state[size_t(g) * kRansLanes + j] = x;
    }
    const uint64_t words = r.varint("group words");
    const uint64_t group_rounds = std::min<uint64_t>(per_group, rounds - g * per_group);
    if (words > group_rounds * kRansLanes) r.fail("group has more words than symbols");
    lay.offset[size_t(g) + 1] = uint32_t(words);  // word counts for now; offsets below
    total += 2 * words;
  }
  const size_t directory_end = r.pos;
  read_escapes_and_data(r, lay, total);
  lay.side_info_bytes = kBlobHeaderBytes + (directory_end - directory_at) + (lay.escape_offset - directory_end) +
                        kBlobTrailerBytes;
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

// Float blocks of a chunk in the workspace scratch (block b = layer * 2 + kind, tokens rows each).
float* const* scratch_blocks(DecodeWorkspace& ws, const KvShape& s, size_t T) {
  const size_t block = T * size_t(s.kv_dim());
  ws.scratch.resize(2 * size_t(s.n_layers) * block);
  ws.blocks.resize(2 * size_t(s.n_layers));
  for (size_t b = 0; b < ws.blocks.size(); ++b) ws.blocks[b] = ws.scratch.data() + b * block;
  return ws.blocks.data();
}

// Baselines into float blocks (keys post-RoPE). Throws CorruptBlob.
void decode_baseline(std::span<const uint8_t> blob, const BlobHeader& h, DecodeWorkspace& ws, float* const* dst) {
  Reader r{blob.first(blob.size() - kBlobTrailerBytes), kBlobHeaderBytes, "chunk blob"};
  const size_t T = h.tokens, d = h.shape.kv_dim(), N = chunk_values(h.shape, T);
  switch (h.method) {
    case Method::Fp16:
    case Method::ZstdFp16: {
      const uint8_t* p;
      if (h.method == Method::Fp16) {
        p = r.take(N * 2, "fp16 values");
      } else {
        const size_t zn = r.left();
        const uint8_t* z = r.take(zn, "zstd frame");
        const unsigned long long want = ZSTD_getFrameContentSize(z, zn);
        if (want != N * 2) r.fail("zstd frame size mismatch");
        ws.raw.resize(N * 2);
        const size_t got = ZSTD_decompress(ws.raw.data(), ws.raw.size(), z, zn);
        if (ZSTD_isError(got) || got != ws.raw.size()) r.fail("zstd frame corrupt");
        p = ws.raw.data();
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
    default: break;
  }
  if (r.left()) r.fail("trailing bytes");
}

// The method dispatch behind both decode_chunk() overloads (header parsed, rows checked).
void decode_parsed(std::span<const uint8_t> blob, const BlobHeader& h, const Profile* profile, const KvDest& dst,
                   uint32_t row0, const LevelDecodeTables* tables, DecodeWorkspace& ws, int32_t* tokens_out) {
  if (h.method != Method::Quant) {
    float* const* blocks = scratch_blocks(ws, h.shape, h.tokens);
    decode_baseline(blob, h, ws, blocks);
    store_float_rows(blocks, false, h.first_pos, h.tokens, dst, row0, ws);
    return;
  }
  if (!profile) throw std::invalid_argument("decode_chunk: quant blob needs the profile");
  if (!(profile->shape == h.shape)) throw CorruptBlob("chunk blob: shape differs from profile");
  if (h.level >= profile->levels.size()) throw CorruptBlob("chunk blob: level not in profile");
  LevelDecodeTables own;
  if (!tables || tables->level != h.level) own = build_decode_tables(*profile, h.level), tables = &own;
  if (h.profile_hash != tables->profile_hash) throw CorruptBlob("chunk blob: made with another profile (hash mismatch)");
  if (h.version >= 3) {
    const QuantChunkInput in{blob, &h, profile, tables, &dst, row0, tokens_out};
    decode_quant_chunks({&in, 1}, ws);
    return;
  }
  // Format 1/2: the previous decoder's loop into float blocks, then the output stage.
  QuantLayout& lay = ws.slots.empty() ? ws.slots.emplace_back().lay : ws.slots[0].lay;
  parse_quant_layout(blob, h, lay);
  check_token_ids(lay, *profile);
  float* const* blocks = scratch_blocks(ws, h.shape, h.tokens);
  if (lay.skip_values) fill_token_layer_v2(lay, *profile, blocks, size_t(h.shape.kv_dim()));
  decode_quant_v2(blob, h, lay, *tables, blocks, nullptr);
  if (tokens_out) std::copy(lay.tokens.begin(), lay.tokens.end(), tokens_out);
  store_float_rows(blocks, true, h.first_pos, h.tokens, dst, row0, ws);
}

// A KvCache as an F32 destination (rows = its tokens, position pos_base at row 0), in d (whose
// vectors keep their memory from call to call).
const KvDest& cache_dest(KvCache& out, uint32_t pos_base, KvDest& d) {
  d.shape = out.shape;
  d.dtype = Dtype::F32;
  d.capacity = uint32_t(std::min<size_t>(out.num_tokens(), 0xFFFFFFFFu));
  d.pos_base = pos_base;
  d.keys_pre_rope = out.keys_pre_rope;
  d.rope_theta = out.rope_theta;
  d.k.clear(), d.v.clear();
  for (int l = 0; l < out.shape.n_layers; ++l) d.k.push_back(out.k[size_t(l)].data()), d.v.push_back(out.v[size_t(l)].data());
  return d;
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
  if (ver < 1 || ver > kBlobVersion) r.fail("unsupported version " + std::to_string(ver));
  BlobHeader h;
  h.version = ver;
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
  QuantLayout lay;
  parse_quant_layout(blob, h, lay);
  return lay;
}

void parse_quant_layout(std::span<const uint8_t> blob, const BlobHeader& h, QuantLayout& lay) {
  if (h.method != Method::Quant) throw std::invalid_argument("parse_quant_layout: not a quant blob");
  Reader r{blob.first(blob.size() - kBlobTrailerBytes), kBlobHeaderBytes, "chunk blob"};
  if (blob.size() > 0xFFFFFFFFull) r.fail("blob larger than 4 GiB");
  lay.version = h.version;
  lay.rounds_per_group = 0;
  lay.values = chunk_values(h.shape, h.tokens);
  lay.skip_values = 0;
  if (h.flags & kBlobFlagTokenLayer) {
    lay.skip_values = 2ull * h.tokens * h.shape.kv_dim();
    lay.values -= lay.skip_values;
  }
  if (h.version >= 3) parse_quant_layout_v3(r, h, lay);
  else parse_quant_layout_v2(r, h, lay);
}

void parse_escapes(std::span<const uint8_t> blob, const QuantLayout& lay, std::vector<uint32_t>& index,
                   std::vector<int32_t>& q) {
  Reader r{blob.subspan(0, lay.escape_end), lay.escape_offset, "chunk blob"};
  const uint64_t N = lay.values;
  index.resize(lay.escapes);
  q.resize(lay.escapes);
  uint64_t idx = 0;
  for (uint32_t e = 0; e < lay.escapes; ++e) {
    const uint64_t delta = r.varint("escape index");
    if (delta >= N || (e > 0 && idx + 1 + delta >= N)) r.fail("escape index out of range");
    idx = e == 0 ? delta : idx + 1 + delta;
    const int64_t v = unzigzag(r.varint("escape value"));
    if (v >= kMaxEscapeQ || v <= -kMaxEscapeQ) r.fail("escape value out of range");
    index[e] = uint32_t(idx);  // < values < 2^32 in every format the decoders take
    q[e] = int32_t(v);
  }
  if (r.pos != lay.escape_end) r.fail("escape list length mismatch");
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
  if (opt.blob_version != kBlobVersion && opt.blob_version != 2)
    throw std::invalid_argument("encode_chunk: can write blob format " + std::to_string(kBlobVersion) + " or 2");
  put_header(out, opt.blob_version, method, level, flags, s, T, pos0, hash);
  ByteWriter w{out};
  switch (method) {
    case Method::Quant: {
      const QuantSymbols qs = quantize(pre, (flags & kBlobFlagTokenLayer) ? 2 * T * s.kv_dim() : 0, s, T, *profile, level);
      const std::span<const int32_t> ids(kv.tokens.data() + begin, T);
      if (opt.blob_version == 2) {
        if (qs.skip)
          for (int32_t id : ids) w.varint(uint64_t(id));
        encode_quant_v2(out, qs, profile->levels[size_t(level)], opt);
      } else {
        if (qs.skip) put_token_ids(out, ids);
        encode_quant_v3(out, qs, s, T, profile->levels[size_t(level)], opt);
      }
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
  const size_t T = h.tokens;
  if (h.first_pos < pos_base) throw CorruptBlob("chunk blob: starts before the output's first position");
  const size_t row0 = h.first_pos - pos_base, end_row = row0 + T;
  if (out.num_tokens() < end_row)
    throw CorruptBlob("chunk blob: positions " + std::to_string(h.first_pos) + ".." +
                      std::to_string(h.first_pos + T) + " outside the output cache");
  if (h.method == Method::Text) {
    const std::vector<int32_t> ids = text_tokens(blob, h);
    std::copy(ids.begin(), ids.end(), out.tokens.begin() + ptrdiff_t(row0));
    return;
  }
  thread_local KvDest view;
  decode_parsed(blob, h, profile, cache_dest(out, pos_base, view), uint32_t(row0), tables, thread_decode_workspace(),
                out.tokens.data() + row0);
}

void decode_chunk(std::span<const uint8_t> blob, const Profile* profile, const KvDest& dst,
                  const LevelDecodeTables* tables, DecodeWorkspace* ws, int32_t* tokens_out) {
  const BlobHeader h = parse_blob_header(blob);
  dst.validate();
  if (dst.on_device) throw std::invalid_argument("decode_chunk: destination is device memory");
  const uint32_t row0 = check_dest_fits(h, dst);
  decode_parsed(blob, h, profile, dst, row0, tables, ws ? *ws : thread_decode_workspace(), tokens_out);
}

BlobStats blob_stats(std::span<const uint8_t> blob, const Profile* profile, const LevelDecodeTables* tables) {
  const BlobHeader h = parse_blob_header(blob);
  BlobStats st;
  st.bytes = blob.size();
  if (h.method != Method::Quant) {
    st.side_info_bytes = kBlobHeaderBytes + kBlobTrailerBytes;
    st.coded_bits = 8.0 * (blob.size() - st.side_info_bytes);
    st.ideal_bits = st.coded_bits;
    return st;
  }
  if (!profile) throw std::invalid_argument("blob_stats: quant blob needs the profile");
  LevelDecodeTables own;
  if (!tables || tables->level != h.level) own = build_decode_tables(*profile, h.level), tables = &own;
  if (tables->profile_hash != h.profile_hash) throw CorruptBlob("blob_stats: profile mismatch");
  const LevelDecodeTables& t = *tables;
  const QuantLayout lay = parse_quant_layout(blob, h);
  check_token_ids(lay, *profile);
  KvCache tmp(h.shape, "", profile->rope_theta, true);
  tmp.resize(h.tokens);
  st.side_info_bytes = lay.side_info_bytes;
  st.coded_bits = 8.0 * (lay.offset[lay.streams] - lay.offset[0]) + 32.0 * lay.final_state.size();
  if (h.version < 3) {
    std::vector<float*> dst;
    for (int l = 0; l < h.shape.n_layers; ++l) dst.push_back(tmp.k[size_t(l)].data()), dst.push_back(tmp.v[size_t(l)].data());
    double bits = 0;
    decode_quant_v2(blob, h, lay, t, dst.data(), &bits);
    st.ideal_bits = bits;
    return st;
  }
  // Format 3: the scalar decode with each coded value's symbol recorded, then -sum log2 p.
  std::vector<uint32_t> esc_index;
  std::vector<int32_t> esc_q;
  parse_escapes(blob, lay, esc_index, esc_q);
  std::vector<uint8_t> symbols(lay.values);
  std::vector<int64_t> rows(h.tokens);
  for (uint32_t r = 0; r < h.tokens; ++r) rows[r] = int64_t(size_t(r) * h.shape.kv_dim() * 4);
  std::vector<void*> base;
  for (int l = 0; l < h.shape.n_layers; ++l) base.push_back(tmp.k[size_t(l)].data()), base.push_back(tmp.v[size_t(l)].data());
  uint32_t status[2] = {0, 0};
  HdChunk c = hd_chunk_of(blob, h, lay, esc_index, esc_q, *profile);
  c.row_offset = rows.data();
  c.status = status;
  c.symbols = symbols.data();
  const HdLevel L = hd_level(t);
  const HdOut o{base.data(), kHdF32, 0, uint64_t(h.shape.head_dim) * 4};
  for (uint32_t g = 0; g < c.groups; ++g) decode_group_hd(c, L, o, g);
  check_quant_status(status[0], status[1], lay.escapes);
  const ProfileLevel& PL = profile->levels[h.level];
  double bits = 0;
  for (uint32_t i = 0; i < c.values; ++i) {
    const HdPos p = hd_value_pos(c, i);
    bits += PL.scale_bits - std::log2(double(PL.tables[p.b * c.kv_dim + p.ch].freq[symbols[i]]));
  }
  st.ideal_bits = bits;
  return st;
}

}  // namespace kvstream::codec
