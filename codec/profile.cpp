#include "codec/profile.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <map>
#include <stdexcept>

#include "codec/bytes.h"
#include "codec/chunk_codec.h"
#include "codec/crc32c.h"
#include "codec/json_fields.h"
#include "codec/io_error.h"
#include "codec/rope.h"

namespace kvstream::codec {
namespace {

constexpr char kMagic[8] = {'K', 'V', 'S', 'P', 'R', 'O', 'F', '1'};
constexpr uint32_t kMaxJson = 16u << 20;

using Reader = ByteReader<CorruptBlob>;

nlohmann::json quality_json(const LevelQuality& q) {
  return {{"bits_per_value", q.bits_per_value}, {"ratio_vs_q8", q.ratio_vs_q8},
          {"ppl_delta_pct", q.ppl_delta_pct}, {"greedy_agreement", q.greedy_agreement},
          {"contexts", q.contexts}};
}
LevelQuality quality_from(const nlohmann::json& j, const std::string& what) {
  LevelQuality q;
  q.bits_per_value = json_number<CorruptBlob>(j, "bits_per_value", 1e300, what, 0.0);
  q.ratio_vs_q8 = json_number<CorruptBlob>(j, "ratio_vs_q8", 1e300, what, 0.0);
  q.ppl_delta_pct = json_number<CorruptBlob>(j, "ppl_delta_pct", 1e300, what, 0.0);
  q.greedy_agreement = json_number<CorruptBlob>(j, "greedy_agreement", 1e300, what, 0.0);
  q.contexts = int(json_int<CorruptBlob>(j, "contexts", 0, INT32_MAX, what, 0));
  return q;
}

// Keys converted to pre-RoPE (positions 0...), values as they are.
const KvCache& pre_rope(const KvCache& kv, KvCache& tmp) {
  if (kv.keys_pre_rope) return kv;
  tmp = kv;
  rope_remove_from_keys(tmp, 0);
  return tmp;
}

template <class F>
void for_each_value(const std::vector<KvCache>& cal, const KvShape& s, F&& f) {
  const int d = s.kv_dim();
  for (const KvCache& kv0 : cal) {
    if (!(kv0.shape == s)) throw std::invalid_argument("calibration cache shape mismatch");
    kv0.validate();
    KvCache tmp;
    const KvCache& kv = pre_rope(kv0, tmp);
    for (int l = 0; l < s.n_layers; ++l)
      for (int kind = 0; kind < 2; ++kind) {
        const std::vector<float>& x = kind == 0 ? kv.k[l] : kv.v[l];
        const int base = (l * 2 + kind) * d;
        for (size_t i = 0; i < x.size(); ++i) f(base + int(i % d), x[i]);
      }
  }
}

}  // namespace

int Profile::level_index(const std::string& name) const {
  std::string names;
  for (size_t i = 0; i < levels.size(); ++i) {
    if (levels[i].name == name) return static_cast<int>(i);
    names += (i ? ", " : "") + levels[i].name;
  }
  throw std::invalid_argument("profile has no level '" + name + "' (levels: " + names + ")");
}

void Profile::validate() const {
  auto bad = [](const std::string& m) { throw std::runtime_error("profile: " + m); };
  if (shape.n_layers <= 0 || shape.n_layers > 1024 || shape.n_kv_heads <= 0 ||
      shape.n_kv_heads > 1024 || shape.head_dim <= 0 || shape.head_dim > 1024 ||
      shape.head_dim % 2)
    bad("bad model shape");
  const uint64_t lanes = 2ull * uint64_t(shape.n_layers) * uint64_t(shape.kv_dim());
  if (lanes > uint64_t(INT32_MAX)) bad("model shape has more than 2^31 lanes");
  if (mean.size() != lanes || weight.size() != lanes) bad("mean/weight size != lanes");
  for (float m : mean)
    if (!std::isfinite(m)) bad("non-finite mean");
  if (token_vocab > kMaxTokenVocab) bad("token table vocabulary too large");
  if (token_kv.size() != size_t(token_vocab) * 2 * size_t(shape.kv_dim())) bad("token table size != vocab * 2 * kv_dim");
  for (float v : token_kv)
    if (!std::isfinite(v)) bad("non-finite token table value");
  if (levels.empty() || levels.size() > 255) bad("needs 1..255 levels");
  for (size_t i = 0; i < levels.size(); ++i) {
    const ProfileLevel& L = levels[i];
    if (L.name.empty()) bad("level without a name");
    for (size_t j = 0; j < i; ++j)
      if (levels[j].name == L.name) bad("duplicate level name " + L.name);
    if (L.scale_bits < 1 || L.scale_bits > kRansMaxScaleBits) bad("bad scale_bits in " + L.name);
    if (L.step.size() != lanes || L.q_min.size() != lanes || L.tables.size() != lanes)
      bad("level " + L.name + " sizes != lanes");
    for (size_t k = 0; k < lanes; ++k) {
      if (!(L.step[k] > 0) || !std::isfinite(L.step[k])) bad("bad step in " + L.name);
      if (L.tables[k].scale_bits != L.scale_bits) bad("table precision mismatch in " + L.name);
      if (std::abs(int64_t(L.q_min[k])) > (int64_t(1) << 30)) bad("q_min out of range");
    }
  }
}

std::vector<uint8_t> serialize_profile(const Profile& p) {
  p.validate();
  nlohmann::json j;
  j["model"] = p.model_name;
  j["n_layers"] = p.shape.n_layers;
  j["n_kv_heads"] = p.shape.n_kv_heads;
  j["head_dim"] = p.shape.head_dim;
  j["rope_theta"] = p.rope_theta;
  j["provenance"] = p.provenance;
  j["levels"] = nlohmann::json::array();
  for (const auto& L : p.levels)
    j["levels"].push_back({{"name", L.name}, {"scale_bits", L.scale_bits}, {"k_step", L.k_step},
                           {"v_step", L.v_step}, {"quality", quality_json(L.quality)}});
  const std::string js = j.dump();
  std::vector<uint8_t> out;
  ByteWriter w{out};
  w.bytes(kMagic, 8);
  // Version 1 bytes (no token table) are kept exactly so that the hashes of such profiles, which
  // containers name, never change.
  w.u32(p.has_token_table() ? kProfileVersion : kProfileVersionNoTable);
  w.u32(static_cast<uint32_t>(js.size()));
  w.bytes(js.data(), js.size());
  for (float m : p.mean) w.f32(m);
  for (float m : p.weight) w.f32(m);
  if (p.has_token_table()) {
    w.u32(p.token_vocab);
    for (float v : p.token_kv) w.f32(v);
  }
  for (const auto& L : p.levels) {
    for (float s : L.step) w.f32(s);
    for (size_t k = 0; k < L.tables.size(); ++k) {
      w.u32(static_cast<uint32_t>(L.q_min[k]));
      w.u16(static_cast<uint16_t>(L.tables[k].freq.size()));
      for (uint32_t f : L.tables[k].freq) w.u16(static_cast<uint16_t>(f));
    }
  }
  w.u32(crc32c(out.data(), out.size()));
  return out;
}

Profile parse_profile(std::span<const uint8_t> bytes, const std::string& what) {
  Reader r{bytes, 0, what};
  if (bytes.size() < 20) r.fail("too short to be a profile (" + std::to_string(bytes.size()) + " bytes)");
  const uint32_t crc = crc32c(bytes.data(), bytes.size() - 4);
  Reader tail{bytes, bytes.size() - 4, what};
  if (tail.u32("crc") != crc) r.fail("CRC32C mismatch (corrupt or truncated file)");
  r.data = bytes.first(bytes.size() - 4);
  if (std::memcmp(r.take(8, "magic"), kMagic, 8) != 0) r.fail("not a kvstream profile (bad magic)");
  const uint32_t version = r.u32("version");
  if (version != kProfileVersion && version != kProfileVersionNoTable)
    r.fail("unsupported profile version " + std::to_string(version));
  const uint32_t jlen = r.u32("json length");
  if (jlen > kMaxJson) r.fail("JSON header too large");
  const uint8_t* jp = r.take(jlen, "JSON header");
  Profile p;
  try {
    const auto j = nlohmann::json::parse(jp, jp + jlen);
    if (!j.is_object()) r.fail("JSON header is not an object");
    p.model_name = j.at("model").get<std::string>();
    p.shape.n_layers = int(json_uint<CorruptBlob>(j, "n_layers", 1, 1024, what));
    p.shape.n_kv_heads = int(json_uint<CorruptBlob>(j, "n_kv_heads", 1, 1024, what));
    p.shape.head_dim = int(json_uint<CorruptBlob>(j, "head_dim", 1, 1024, what));
    p.rope_theta = float(json_number<CorruptBlob>(j, "rope_theta", 1e30, what));
    p.provenance = j.value("provenance", nlohmann::json::object());
    const auto& lv = j.at("levels");
    if (!lv.is_array() || lv.empty() || lv.size() > 255) r.fail("levels must be 1..255 entries");
    for (const auto& e : lv) {
      ProfileLevel L;
      L.name = e.at("name").get<std::string>();
      L.scale_bits = int(json_uint<CorruptBlob>(e, "scale_bits", 1, kRansMaxScaleBits, what));
      L.k_step = float(json_number<CorruptBlob>(e, "k_step", 1e30, what, 0.0));
      L.v_step = float(json_number<CorruptBlob>(e, "v_step", 1e30, what, 0.0));
      L.quality = quality_from(e.value("quality", nlohmann::json::object()), what);
      p.levels.push_back(std::move(L));
    }
  } catch (const nlohmann::json::exception& e) {
    r.fail(std::string("bad JSON header: ") + e.what());
  }
  // Lanes (2 * n_layers * kv_dim, up to 2^31: counted in 64 bits) bounded by the file: every lane
  // needs at least 4 (mean) + 4 (weight) bytes, plus per level 4 (step) + 4 (q_min) + 2 (symbol
  // count) + 4 (two frequencies). Checked before allocating.
  const uint64_t lanes = 2ull * uint64_t(p.shape.n_layers) * uint64_t(p.shape.n_kv_heads) * uint64_t(p.shape.head_dim);
  if (lanes * (8 + p.levels.size() * 14) > r.left()) r.fail("truncated: tables missing");
  p.mean.resize(lanes);
  p.weight.resize(lanes);
  for (auto& m : p.mean) m = r.f32("mean");
  for (auto& m : p.weight) m = r.f32("weight");
  if (version >= 2) {
    p.token_vocab = r.u32("token table vocabulary");
    if (p.token_vocab == 0 || p.token_vocab > kMaxTokenVocab)
      r.fail("token table vocabulary " + std::to_string(p.token_vocab) + " outside 1.." + std::to_string(kMaxTokenVocab));
    const size_t n = size_t(p.token_vocab) * 2 * size_t(p.shape.kv_dim());
    r.need(n * 4, "token table");
    p.token_kv.resize(n);
    for (auto& v : p.token_kv) v = r.f32("token table");
  }
  for (auto& L : p.levels) {
    L.step.resize(lanes);
    L.q_min.resize(lanes);
    L.tables.resize(lanes);
    for (auto& s : L.step) s = r.f32("step");
    for (size_t k = 0; k < lanes; ++k) {
      L.q_min[k] = static_cast<int32_t>(r.u32("q_min"));
      const uint16_t n = r.u16("symbols");
      if (n < 2 || n > kRansMaxSymbols) r.fail("table with " + std::to_string(n) + " symbols");
      r.need(size_t(n) * 2, "frequencies");
      RansTable& t = L.tables[k];
      t.scale_bits = L.scale_bits;
      t.freq.resize(n);
      for (auto& f : t.freq) f = r.u16("freq");
      try {
        rans_finish_table(t);
      } catch (const std::invalid_argument& e) {
        r.fail(std::string("level ") + L.name + ": " + e.what());
      }
    }
  }
  if (r.left() != 0) r.fail(std::to_string(r.left()) + " trailing bytes");
  try {
    p.validate();
  } catch (const std::runtime_error& e) {
    r.fail(e.what());
  }
  return p;
}

uint64_t fnv1a64(std::span<const uint8_t> bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint8_t b : bytes) h = (h ^ b) * 0x100000001b3ull;
  return h;
}

uint64_t Profile::hash() const { return fnv1a64(serialize_profile(*this)); }

void save_profile(const Profile& p, const std::string& path) {
  const auto bytes = serialize_profile(p);
  std::ofstream f(path, std::ios::binary);
  if (!f) throw file_error("cannot write " + path);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw file_error("error writing " + path);
}

Profile load_profile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw file_error("cannot open profile " + path);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  try {
    return parse_profile(bytes, path);
  } catch (const kvstream::Error&) {
    throw;
  } catch (const std::runtime_error& e) {  // the file is there: its bytes fail their checks
    throw kvstream::Error(ErrorCode::kCorrupt, e.what());
  }
}

LaneStats lane_stats(const std::vector<KvCache>& cal) {
  if (cal.empty()) throw std::invalid_argument("lane_stats: no calibration caches");
  const KvShape s = cal[0].shape;
  const size_t lanes = lane_count(s);
  std::vector<double> sum(lanes, 0), sq(lanes, 0), n(lanes, 0);
  for_each_value(cal, s, [&](int lane, float x) { sum[lane] += x, sq[lane] += double(x) * x, ++n[lane]; });
  LaneStats st;
  st.mean.resize(lanes);
  st.rms.resize(lanes);
  for (size_t k = 0; k < lanes; ++k) {
    const double m = n[k] ? sum[k] / n[k] : 0;
    st.mean[k] = static_cast<float>(m);
    st.rms[k] = static_cast<float>(std::sqrt(std::max(0.0, n[k] ? sq[k] / n[k] - m * m : 0)));
  }
  return st;
}

ProfileLevel build_level(const KvShape& s, const std::vector<KvCache>& cal,
                         const std::vector<float>& mean, const std::vector<float>& weight,
                         const LevelRecipe& rc, double tail_mass) {
  const size_t lanes = lane_count(s);
  if (mean.size() != lanes || weight.size() != lanes)
    throw std::invalid_argument("build_level: mean/weight size != lanes");
  ProfileLevel L;
  L.name = rc.name;
  L.scale_bits = rc.scale_bits;
  L.k_step = rc.k_step;
  L.v_step = rc.v_step;
  L.step.resize(lanes);
  const int d = s.kv_dim();
  for (size_t k = 0; k < lanes; ++k) {
    const int layer = int(k) / (2 * d), kind = (int(k) / d) % 2;
    const auto& mult = kind == 0 ? rc.k_layer_mult : rc.v_layer_mult;
    const float m = mult.empty() ? 1.0f : mult.at(layer);
    L.step[k] = (kind == 0 ? rc.k_step : rc.v_step) * m / std::max(weight[k], 1e-12f);
  }
  std::vector<std::map<int64_t, double>> hist(lanes);
  for_each_value(cal, s, [&](int lane, float x) {
    const double q = std::nearbyint((double(x) - mean[lane]) / L.step[lane]);
    hist[lane][static_cast<int64_t>(std::clamp(q, -1e9, 1e9))] += 1;
  });
  L.q_min.resize(lanes);
  L.tables.resize(lanes);
  const int64_t max_span = kRansMaxSymbols - 1;  // table values; +1 escape
  for (size_t k = 0; k < lanes; ++k) {
    auto& h = hist[k];
    if (h.empty()) h[0] = 1;
    double total = 0;
    for (auto& [q, c] : h) total += c;
    // Trim tails holding <= tail_mass/2 each, then shrink the lighter end until the span fits.
    auto lo = h.begin();
    auto hi = std::prev(h.end());
    double cut_lo = 0, cut_hi = 0;
    while (lo != hi && cut_lo + lo->second <= tail_mass / 2 * total) cut_lo += lo->second, ++lo;
    while (hi != lo && cut_hi + hi->second <= tail_mass / 2 * total) cut_hi += hi->second, --hi;
    while (hi->first - lo->first + 1 > max_span) {
      if (lo->second <= hi->second) ++lo;
      else --hi;
    }
    const int64_t qmin = lo->first, span = hi->first - lo->first + 1;
    std::vector<double> counts(static_cast<size_t>(span + 1), 0.0);
    for (auto& [q, c] : h) {
      if (q >= qmin && q < qmin + span) counts[static_cast<size_t>(q - qmin)] += c;
      else counts.back() += c;
    }
    // A light prior so values unseen in calibration stay cheap-ish, escapes included.
    for (auto& c : counts) c += 0.02;
    L.q_min[k] = static_cast<int32_t>(qmin);
    L.tables[k] = rans_normalize(counts, rc.scale_bits);
  }
  return L;
}

LevelDecodeTables build_decode_tables(const Profile& p, int level) {
  if (level < 0 || level >= static_cast<int>(p.levels.size()))
    throw std::invalid_argument("build_decode_tables: level " + std::to_string(level) + " not in profile");
  const ProfileLevel& L = p.levels[level];
  LevelDecodeTables t;
  t.scale_bits = L.scale_bits;
  t.lanes = lane_count(p.shape);
  t.slots.assign(size_t(t.lanes) << t.scale_bits, 0);
  t.value.assign(size_t(t.lanes) * 256, std::nanf(""));
  t.escape.resize(t.lanes);
  t.mean = p.mean;
  t.step = L.step;
  t.q_min = L.q_min;
  t.profile_hash = p.hash();
  t.level = level;
  for (int k = 0; k < t.lanes; ++k) {
    const RansTable& rt = L.tables[k];
    rans_build_slots(rt, t.slots.data() + (size_t(k) << t.scale_bits));
    const size_t n = rt.freq.size();
    t.escape[k] = static_cast<uint16_t>(n - 1);
    for (size_t s = 0; s + 1 < n; ++s)
      t.value[size_t(k) * 256 + s] = p.mean[k] + L.step[k] * float(int64_t(L.q_min[k]) + int64_t(s));
  }
  return t;
}

}  // namespace kvstream::codec
