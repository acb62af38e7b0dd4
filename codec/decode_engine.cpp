// The CPU decode engine (decode_engine.h): dispatch, per-chunk preparation, the scalar path and the
// float output stage. The SIMD kernels are in decode_engine_avx2.cpp / decode_engine_avx512.cpp.
#include "codec/decode_engine.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>

#include "codec/cpu_features.h"
#include "codec/half.h"
#include "codec/rope.h"

namespace kvstream::codec {
namespace {

bool cpu_has(DecodePath p) {
  const CpuFeatures& f = cpu_features();
  if (p == DecodePath::Avx2) return f.avx2 && f.f16c && f.bmi2 && f.popcnt;
  if (p == DecodePath::Avx512) return cpu_has(DecodePath::Avx2) && f.avx512f;
  return p == DecodePath::Scalar || p == DecodePath::Auto;
}

std::atomic<uint8_t> g_path{0};  // 0 = not chosen yet
std::once_flag g_env_once;

DecodePath current_path() {
  std::call_once(g_env_once, [] {
    if (g_path.load() != 0) return;  // set_decode_path() came first
    DecodePath p = best_decode_path();
    if (const char* env = std::getenv("KVSTREAM_DECODE_PATH"); env && *env) {
      const DecodePath want = parse_decode_path(env);  // a typo is an error, not a silent default
      if (want != DecodePath::Auto) {
        if (!cpu_has(want)) throw std::invalid_argument(std::string("KVSTREAM_DECODE_PATH=") + env + ": not supported by this CPU");
        p = want;
      }
    }
    uint8_t expected = 0;
    g_path.compare_exchange_strong(expected, uint8_t(p));
  });
  return DecodePath(g_path.load());
}

constexpr size_t es_of(Dtype d) { return d == Dtype::F32 ? 4 : 2; }

void convert_scalar(const float* in, size_t n, Dtype dt, uint8_t* out) {
  if (dt == Dtype::F32) return void(std::memcpy(out, in, n * 4));
  for (size_t i = 0; i < n; ++i) {
    const uint16_t h = dt == Dtype::F16 ? f32_to_f16(in[i]) : f32_to_bf16(in[i]);
    std::memcpy(out + 2 * i, &h, 2);
  }
}

// The chunk's SIMD eligibility (decode_engine_simd.h).
bool simd_shape(const KvShape& s) { return s.kv_dim() % int(kRansLanes) == 0 && s.head_dim % 8 == 0; }

uint32_t lower_bound_index(const std::vector<uint32_t>& v, uint64_t x) {
  return uint32_t(std::lower_bound(v.begin(), v.end(), x, [](uint32_t a, uint64_t b) { return a < b; }) - v.begin());
}

// Fills a slot from its input: layout, escapes, token ids, rows, bases, output job (not the RoPE rows).
void prepare(const QuantChunkInput& in, DecodeWorkspace::Slot& s) {
  const BlobHeader& h = *in.header;
  parse_quant_layout(in.blob, h, s.lay);
  if (s.lay.version < 3) throw std::invalid_argument("decode_quant_chunks: not a format-3 blob");
  check_token_ids(s.lay, *in.profile);
  parse_escapes(in.blob, s.lay, s.esc_index, s.esc_q);
  if (in.tokens_out) std::copy(s.lay.tokens.begin(), s.lay.tokens.end(), in.tokens_out);
  const KvDest& d = *in.dst;
  s.row_off.resize(h.tokens);
  for (uint32_t t = 0; t < h.tokens; ++t) s.row_off[t] = d.row_offset(in.row0 + t);
  s.base.resize(2 * size_t(h.shape.n_layers));
  for (int l = 0; l < h.shape.n_layers; ++l)
    s.base[2 * size_t(l)] = static_cast<uint8_t*>(d.k[size_t(l)]), s.base[2 * size_t(l) + 1] = static_cast<uint8_t*>(d.v[size_t(l)]);
  s.out = simd::OutJob{s.base.data(), s.row_off.data(), nullptr, d.head_stride_bytes(),
                       uint32_t(d.dtype == Dtype::F32 ? kHdF32 : d.dtype == Dtype::F16 ? kHdF16 : kHdBF16),
                       h.tokens, uint32_t(h.shape.kv_dim()), uint32_t(h.shape.head_dim)};
  s.status[0] = s.status[1] = 0;
}

HdChunk hd_chunk(const QuantChunkInput& in, DecodeWorkspace::Slot& s) {
  HdChunk c = hd_chunk_of(in.blob, *in.header, s.lay, s.esc_index, s.esc_q, *in.profile);
  c.row_offset = s.row_off.data();
  c.rope_cs = s.out.rope_cs;
  c.status = s.status;
  return c;
}

}  // namespace

// ---- dispatch ----

const char* decode_path_name(DecodePath p) {
  switch (p) {
    case DecodePath::Auto: return "auto";
    case DecodePath::Scalar: return "scalar";
    case DecodePath::Avx2: return "avx2";
    case DecodePath::Avx512: return "avx512";
  }
  return "?";
}

DecodePath parse_decode_path(std::string_view s) {
  for (DecodePath p : {DecodePath::Auto, DecodePath::Scalar, DecodePath::Avx2, DecodePath::Avx512})
    if (s == decode_path_name(p)) return p;
  throw std::invalid_argument("unknown decode path '" + std::string(s) + "' (expected auto, scalar, avx2 or avx512)");
}

bool decode_path_available(DecodePath p) { return cpu_has(p); }

DecodePath best_decode_path() {
  if (cpu_has(DecodePath::Avx512)) return DecodePath::Avx512;
  if (cpu_has(DecodePath::Avx2)) return DecodePath::Avx2;
  return DecodePath::Scalar;
}

DecodePath active_decode_path() { return current_path(); }

void set_decode_path(DecodePath p) {
  if (p == DecodePath::Auto) p = best_decode_path();
  if (!cpu_has(p)) throw std::invalid_argument(std::string("decode path ") + decode_path_name(p) + " is not supported by this CPU");
  g_path.store(uint8_t(p));
}

// ---- RoPE rows ----

void RopeTable::reserve(float theta, int head_dim, uint64_t end) {
  if (theta != theta_ || head_dim != head_dim_) cs_.clear(), theta_ = theta, head_dim_ = head_dim;
  const size_t row = size_t(head_dim), have = cs_.size() / row;
  if (end <= have || end * row * sizeof(float) > kMaxBytes) return;
  const size_t grow = std::min<uint64_t>(kMaxBytes / (row * sizeof(float)), std::max<uint64_t>(end, 2 * have));
  cs_.resize(grow * row);
  rope_cs_rows(theta, head_dim, uint32_t(have), uint32_t(grow - have), false, cs_.data() + have * row);
}

const float* RopeTable::rows(float theta, int head_dim, uint32_t pos0, uint32_t n, std::vector<float>& spill) {
  reserve(theta, head_dim, uint64_t(pos0) + n);
  const size_t row = size_t(head_dim);
  if (uint64_t(pos0) + n <= cs_.size() / row) return cs_.data() + size_t(pos0) * row;
  spill.resize(size_t(n) * row);
  rope_cs_rows(theta, head_dim, pos0, n, false, spill.data());
  return spill.data();
}

DecodeWorkspace& thread_decode_workspace() {
  thread_local DecodeWorkspace ws;
  return ws;
}

// ---- format-3 Quant chunks ----

HdChunk hd_chunk_of(std::span<const uint8_t> blob, const BlobHeader& h, const QuantLayout& lay,
                    const std::vector<uint32_t>& esc_index, const std::vector<int32_t>& esc_q, const Profile& p) {
  HdChunk c;
  c.data = blob.data();
  c.group_offset = lay.offset.data();
  c.final_state = lay.final_state.data();
  c.esc_index = esc_index.data();
  c.esc_q = esc_q.data();
  c.escapes = lay.escapes;
  c.groups = lay.streams;
  c.rounds_per_group = lay.rounds_per_group;
  c.values = uint32_t(lay.values);
  c.first_block = lay.skip_values ? 2u : 0u;
  c.tokens = lay.tokens.data();
  c.token_kv = p.token_kv.data();
  c.n_tokens = h.tokens;
  c.kv_dim = uint32_t(h.shape.kv_dim());
  c.head_dim = uint32_t(h.shape.head_dim);
  c.head_log2 = std::has_single_bit(c.head_dim) ? uint32_t(std::countr_zero(c.head_dim)) : 32u;
  c.n_layers = uint32_t(h.shape.n_layers);
  return c;
}

void check_quant_status(uint32_t bad, uint32_t seen, uint32_t listed) {
  if (bad & kHdBadStream) throw CorruptBlob("chunk blob: a rANS group does not end cleanly");
  if (bad & kHdBadEscape) throw CorruptBlob("chunk blob: escape symbol at an index not in the escape list");
  if (seen != listed)
    throw CorruptBlob("chunk blob: escape count mismatch (" + std::to_string(seen) + " decoded, " +
                      std::to_string(listed) + " listed)");
}

void decode_quant_chunks(std::span<const QuantChunkInput> in, DecodeWorkspace& ws, size_t* failed) {
  if (in.empty()) return;
  if (ws.slots.size() < in.size()) ws.slots.resize(in.size());
  size_t at = 0;
  try {
    for (at = 0; at < in.size(); ++at) prepare(in[at], ws.slots[at]);
  } catch (const CorruptBlob&) {
    if (failed) *failed = at;
    throw;
  }
  // RoPE rows: reserve the batch's positions first (growing the table moves it), then point.
  const KvDest& d0 = *in[0].dst;
  if (!d0.keys_pre_rope) {
    uint64_t end = 0;
    for (const auto& c : in) end = std::max<uint64_t>(end, uint64_t(c.header->first_pos) + c.header->tokens);
    ws.rope.reserve(d0.rope_theta, d0.shape.head_dim, end);
    for (size_t i = 0; i < in.size(); ++i)
      ws.slots[i].out.rope_cs = ws.rope.rows(d0.rope_theta, d0.shape.head_dim, in[i].header->first_pos,
                                             in[i].header->tokens, ws.slots[i].rope_spill);
  }
  const DecodePath path = current_path();
  ws.jobs.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    DecodeWorkspace::Slot& s = ws.slots[i];
    const HdChunk c = hd_chunk(in[i], s);
    if (path == DecodePath::Scalar || !simd_shape(in[i].header->shape)) {
      const HdLevel L = hd_level(*in[i].tables);
      const HdOut o{reinterpret_cast<void* const*>(s.base.data()), s.out.dtype, s.out.rope_cs ? 1u : 0u, s.out.head_stride};
      for (uint32_t g = 0; g < c.groups; ++g) decode_group_hd(c, L, o, g);
      for (uint32_t p = 0; p < token_pairs_hd(c); ++p) fill_token_pair_hd(c, o, p);
      continue;
    }
    const LevelDecodeTables& t = *in[i].tables;
    for (uint32_t g = 0; g < c.groups; ++g) {
      simd::GroupJob j;
      j.out = &s.out;
      j.words = c.data + c.group_offset[g];
      j.words_end = c.data + c.group_offset[g + 1];
      j.states = c.final_state + size_t(g) * kRansLanes;
      j.first_round = hd_group_first_round(c, g);
      j.rounds = hd_group_end_round(c, g) - j.first_round;
      const HdPos p = hd_round_pos(c, j.first_round);
      j.b = p.b, j.t = p.t, j.c0 = p.ch;
      j.slots = t.slots.data();
      j.scale_bits = uint32_t(t.scale_bits);
      j.mean = t.mean.data(), j.step = t.step.data(), j.q_min = t.q_min.data(), j.escape = t.escape.data();
      j.esc_index = s.esc_index.data(), j.esc_q = s.esc_q.data();
      j.esc_begin = lower_bound_index(s.esc_index, uint64_t(j.first_round) * kRansLanes);
      j.esc_end = lower_bound_index(s.esc_index, uint64_t(j.first_round + j.rounds) * kRansLanes);
      j.bad = j.seen = 0;
      j.chunk = uint32_t(i);
      ws.jobs.push_back(j);
    }
    if (c.first_block) {
      const simd::TokenJob tj{&s.out, s.lay.tokens.data(), in[i].profile->token_kv.data()};
      if (path == DecodePath::Avx512) simd::fill_tokens_avx512(tj);
      else simd::fill_tokens_avx2(tj);
    }
  }
  if (!ws.jobs.empty()) {
    if (path == DecodePath::Avx512) simd::decode_groups_avx512(ws.jobs.data(), ws.jobs.size());
    else simd::decode_groups_avx2(ws.jobs.data(), ws.jobs.size());
    for (const auto& j : ws.jobs) {
      uint32_t* st = ws.slots[j.chunk].status;
      st[0] |= j.bad, st[1] += j.seen;
    }
  }
  for (at = 0; at < in.size(); ++at) {
    try {
      const DecodeWorkspace::Slot& s = ws.slots[at];
      check_quant_status(s.status[0], s.status[1], s.lay.escapes);
    } catch (const CorruptBlob&) {
      if (failed) *failed = at;
      throw;
    }
  }
}

// ---- float rows -> destination ----

void convert_floats(const float* in, size_t n, Dtype dt, uint8_t* out) {
  const DecodePath p = current_path();
  const uint32_t code = dt == Dtype::F32 ? kHdF32 : dt == Dtype::F16 ? kHdF16 : kHdBF16;
  // The SIMD converters say how many they converted; the scalar loop converts the rest.
  size_t done = 0;
  if (p == DecodePath::Avx512) done = simd::convert_avx512(in, n, code, out);
  else if (p == DecodePath::Avx2) done = simd::convert_avx2(in, n, code, out);
  convert_scalar(in + done, n - done, dt, out + done * es_of(dt));
}

void store_float_rows(const float* const* blocks, bool keys_pre, uint32_t first_pos, uint32_t tokens,
                      const KvDest& dst, uint32_t row0, DecodeWorkspace& ws) {
  const KvShape& s = dst.shape;
  const size_t d = size_t(s.kv_dim()), hd = size_t(s.head_dim);
  const bool rotate = keys_pre != dst.keys_pre_rope;  // forward when keys_pre, else back to pre-RoPE
  const float* cs = rotate ? ws.rope.rows(dst.rope_theta, s.head_dim, first_pos, tokens, ws.rope_spill) : nullptr;
  ws.row.resize(d);
  float* tmp = ws.row.data();
  for (int b = 0; b < 2 * s.n_layers; ++b) {
    auto* base = static_cast<uint8_t*>(b % 2 ? dst.v[size_t(b / 2)] : dst.k[size_t(b / 2)]);
    for (uint32_t t = 0; t < tokens; ++t) {
      const int64_t off = dst.row_offset(row0 + t);
      if (off < 0) continue;
      const float* src = blocks[b] + size_t(t) * d;
      if (rotate && b % 2 == 0) {
        const float* c = cs + size_t(t) * hd;
        for (size_t ch = 0; ch < d; ch += 2) {
          const size_t j = ch % hd;  // pair (j, j + 1) of its head
          const float sn = keys_pre ? c[j + 1] : -c[j + 1];
          rope_pair_hd(src[ch], src[ch + 1], c[j], sn, tmp[ch], tmp[ch + 1]);
        }
        src = tmp;
      }
      if (dst.heads_packed()) {
        convert_floats(src, d, dst.dtype, base + off);
      } else {
        for (int h = 0; h < s.n_kv_heads; ++h)
          convert_floats(src + size_t(h) * hd, hd, dst.dtype, base + off + size_t(h) * dst.head_stride_bytes());
      }
    }
  }
}

}  // namespace kvstream::codec
