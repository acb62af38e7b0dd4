// The .kvs container: layout in docs/FORMAT.md.
#include "codec/container.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>

#include "codec/bytes.h"
#include "codec/crc32c.h"
#include "codec/json_fields.h"
#include "codec/io_error.h"
#include "codec/thread_pool.h"

namespace kvstream::codec {
namespace {

constexpr char kMagic[8] = {'K', 'V', 'S', 'C', 'O', 'N', 'T', '1'};
constexpr uint32_t kMaxJson = 1u << 20;
using Reader = ByteReader<CorruptBlob>;

// The fewest bytes a blob of `m` can carry one chunk of T tokens of shape s in (docs/FORMAT.md,
// "Size bounds"): what bounds a container's shape x tokens by its size before anything is
// allocated from them. N = 2 * n_layers * kv_dim * T values (< 2^61 for u16 shape fields).
uint64_t min_blob_bytes(Method m, const KvShape& s, uint64_t T) {
  const uint64_t kv = uint64_t(s.n_kv_heads) * uint64_t(s.head_dim), rows = 2 * uint64_t(s.n_layers) * T;
  const uint64_t N = rows * kv, fixed = kBlobHeaderBytes + kBlobTrailerBytes;
  switch (m) {
    case Method::Text: return fixed + T;  // a varint per token id
    case Method::Fp16: return fixed + 2 * N;
    case Method::Q8: return fixed + 2 * rows + N;
    case Method::Q4: return fixed + 2 * rows + (N + 1) / 2;
    case Method::ZstdFp16:  // frame magic + header, then >= 4 bytes (RLE block) per 128 KiB of output
      return fixed + 6 + 4 * ((2 * N + (1u << 17) - 1) >> 17);
    case Method::Quant: {  // stream count + 6-byte directory entry per <= 32767 coded values + escapes
      const uint64_t coded = s.n_layers >= 2 ? N - 2 * T * kv : N;  // a token-table blob skips layer 0
      return fixed + 2 + 6 * ((coded + 32766) / 32767) + 1;
    }
  }
  return fixed;
}

std::string hex64(uint64_t v) {
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
  return b;
}

}  // namespace

nlohmann::json ladder_to_json(const std::vector<LadderLevel>& ladder) {
  auto j = nlohmann::json::array();
  for (const auto& l : ladder)
    j.push_back({{"name", l.name}, {"method", method_name(l.method)},
                 {"profile_level", l.profile_level},
                 {"bits_per_value", l.quality.bits_per_value}, {"ratio_vs_q8", l.quality.ratio_vs_q8},
                 {"ppl_delta_pct", l.quality.ppl_delta_pct},
                 {"greedy_agreement", l.quality.greedy_agreement}, {"contexts", l.quality.contexts}});
  return j;
}

std::vector<LadderLevel> ladder_from_json(const nlohmann::json& j) {
  if (!j.is_array() || j.empty() || j.size() > 255) throw CorruptBlob("ladder: must be an array of 1..255 levels");
  std::vector<LadderLevel> out;
  try {
    for (const auto& e : j) {
      LadderLevel l;
      l.name = e.at("name").get<std::string>();
      try {
        l.method = parse_method(e.at("method").get<std::string>());
      } catch (const std::invalid_argument& ex) {
        throw CorruptBlob(std::string("ladder: ") + ex.what());
      }
      l.profile_level = int(json_int<CorruptBlob>(e, "profile_level", -1, 254, "ladder", -1));
      l.quality.bits_per_value = json_number<CorruptBlob>(e, "bits_per_value", 1e300, "ladder", 0.0);
      l.quality.ratio_vs_q8 = json_number<CorruptBlob>(e, "ratio_vs_q8", 1e300, "ladder", 0.0);
      l.quality.ppl_delta_pct = json_number<CorruptBlob>(e, "ppl_delta_pct", 1e300, "ladder", 0.0);
      l.quality.greedy_agreement = json_number<CorruptBlob>(e, "greedy_agreement", 1e300, "ladder", 0.0);
      l.quality.contexts = int(json_int<CorruptBlob>(e, "contexts", 0, INT32_MAX, "ladder", 0));
      if (l.name.empty()) throw CorruptBlob("ladder: level without a name");
      if ((l.method == Method::Quant) != (l.profile_level >= 0))
        throw CorruptBlob("ladder: level " + l.name + " has a bad profile_level");
      for (const auto& o : out)
        if (o.name == l.name) throw CorruptBlob("ladder: duplicate level " + l.name);
      out.push_back(std::move(l));
    }
  } catch (const nlohmann::json::exception& e) {
    throw CorruptBlob(std::string("ladder: bad JSON: ") + e.what());
  }
  return out;
}

int ContainerInfo::level_index(const std::string& name) const {
  std::string names;
  for (size_t i = 0; i < ladder.size(); ++i) {
    if (ladder[i].name == name) return static_cast<int>(i);
    names += (i ? ", " : "") + ladder[i].name;
  }
  throw std::invalid_argument("container has no level '" + name + "' (levels: " + names + ")");
}

uint64_t ContainerInfo::chunk_end(uint32_t c) const {
  return std::min<uint64_t>(num_tokens, uint64_t(c + 1) * chunk_tokens);
}

std::vector<LadderLevel> default_ladder(const Profile& p) {
  std::vector<LadderLevel> l;
  for (size_t i = 0; i < p.levels.size(); ++i)
    l.push_back({p.levels[i].name, Method::Quant, int(i), p.levels[i].quality});
  LadderLevel text{"text", Method::Text, -1, {}};
  text.quality.greedy_agreement = 1.0;
  l.push_back(text);
  return l;
}

void add_baselines(std::vector<LadderLevel>& ladder) {
  auto pos = ladder.end();
  if (!ladder.empty() && ladder.back().method == Method::Text) --pos;
  std::vector<LadderLevel> b;
  for (Method m : {Method::Fp16, Method::Q8, Method::Q4, Method::ZstdFp16})
    b.push_back({method_name(m), m, -1, {}});
  ladder.insert(pos, b.begin(), b.end());
}

std::vector<uint8_t> encode_container(const KvCache& kv, const Profile& profile,
                                      const std::vector<LadderLevel>& ladder, uint32_t chunk_tokens,
                                      const EncodeOptions& opt, int threads) {
  kv.validate();
  if (chunk_tokens == 0 || chunk_tokens > 65535) throw std::invalid_argument("chunk_tokens must be 1..65535");
  if (kv.num_tokens() == 0) throw std::invalid_argument("encode_container: empty cache");
  if (ladder.empty() || ladder.size() > 255) throw std::invalid_argument("ladder must have 1..255 levels");
  for (size_t l = 0; l < ladder.size(); ++l)
    if ((ladder[l].method == Method::Text) != (l + 1 == ladder.size()))
      throw std::invalid_argument("the ladder's last level, and only it, must be text");
  if (!(profile.shape == kv.shape)) throw std::invalid_argument("profile is for another model shape");
  for (const auto& l : ladder)
    if (l.method == Method::Quant && (l.profile_level < 0 || l.profile_level >= int(profile.levels.size())))
      throw std::invalid_argument("ladder level " + l.name + " not in profile");
  ContainerInfo info;
  info.shape = kv.shape;
  info.model_name = kv.model_name;
  info.rope_theta = kv.rope_theta;
  info.profile_hash = profile.hash();
  info.chunk_tokens = chunk_tokens;
  info.num_tokens = kv.num_tokens();
  info.num_chunks = uint32_t((kv.num_tokens() + chunk_tokens - 1) / chunk_tokens);
  info.ladder = ladder;
  const size_t L = ladder.size();
  EncodeOptions eo = opt;
  eo.profile_hash = info.profile_hash;
  std::vector<std::vector<uint8_t>> blobs(size_t(info.num_chunks) * L);
  parallel_for(blobs.size(), threads, [&](size_t i) {
    const uint32_t c = uint32_t(i / L);
    const LadderLevel& lv = ladder[i % L];
    blobs[i] = encode_chunk(kv, info.chunk_begin(c), info.chunk_end(c), uint32_t(info.chunk_begin(c)),
                            lv.method, &profile, lv.method == Method::Quant ? lv.profile_level : 0, eo);
  });
  nlohmann::json j = {{"model", info.model_name}, {"n_layers", info.shape.n_layers},
                      {"n_kv_heads", info.shape.n_kv_heads}, {"head_dim", info.shape.head_dim},
                      {"rope_theta", info.rope_theta}, {"profile_hash", hex64(info.profile_hash)},
                      {"chunk_tokens", info.chunk_tokens}, {"num_tokens", info.num_tokens},
                      {"num_chunks", info.num_chunks}, {"ladder", ladder_to_json(ladder)}};
  const std::string js = j.dump();
  std::vector<uint8_t> out;
  ByteWriter w{out};
  w.bytes(kMagic, 8);
  w.u32(kContainerVersion);
  w.u32(uint32_t(js.size()));
  w.bytes(js.data(), js.size());
  w.u32(crc32c(out.data(), out.size()));
  const size_t index_at = out.size();
  for (const auto& b : blobs) w.u32(uint32_t(b.size())), w.u32(crc32c(b.data(), b.size()));
  w.u32(crc32c(out.data() + index_at, out.size() - index_at));
  for (const auto& b : blobs) w.bytes(b.data(), b.size());
  return out;
}

ContainerReader ContainerReader::parse(std::vector<uint8_t> bytes) {
  ContainerReader cr;
  cr.bytes_ = std::move(bytes);
  const std::span<const uint8_t> all(cr.bytes_);
  Reader r{all, 0, "container"};
  if (std::memcmp(r.take(8, "magic"), kMagic, 8) != 0) r.fail("not a .kvs container (bad magic)");
  const uint32_t ver = r.u32("version");
  if (ver != kContainerVersion) r.fail("unsupported container version " + std::to_string(ver));
  const uint32_t jlen = r.u32("header length");
  if (jlen > kMaxJson) r.fail("header JSON too large");
  const uint8_t* jp = r.take(jlen, "header JSON");
  const size_t hdr_end = r.pos;
  if (r.u32("header crc") != crc32c(all.data(), hdr_end)) r.fail("header CRC32C mismatch");
  ContainerInfo& info = cr.info_;
  try {
    const auto j = nlohmann::json::parse(jp, jp + jlen);
    if (!j.is_object()) r.fail("header JSON is not an object");
    info.model_name = j.at("model").get<std::string>();
    info.shape.n_layers = int(json_uint<CorruptBlob>(j, "n_layers", 1, 65535, "container"));
    info.shape.n_kv_heads = int(json_uint<CorruptBlob>(j, "n_kv_heads", 1, 65535, "container"));
    info.shape.head_dim = int(json_uint<CorruptBlob>(j, "head_dim", 1, 1024, "container"));
    info.rope_theta = float(json_number<CorruptBlob>(j, "rope_theta", 1e30, "container"));
    if (!(info.rope_theta > 0)) r.fail("bad rope_theta");
    const std::string h = j.at("profile_hash").get<std::string>();
    if (h.size() != 16 || h.find_first_not_of("0123456789abcdef") != std::string::npos)
      r.fail("bad profile_hash");
    info.profile_hash = std::stoull(h, nullptr, 16);
    info.chunk_tokens = uint32_t(json_uint<CorruptBlob>(j, "chunk_tokens", 1, 65535, "container"));
    info.num_tokens = json_uint<CorruptBlob>(j, "num_tokens", 1, 1ull << 31, "container");
    info.num_chunks = uint32_t(json_uint<CorruptBlob>(j, "num_chunks", 1, UINT32_MAX, "container"));
    info.ladder = ladder_from_json(j.at("ladder"));
  } catch (const nlohmann::json::exception& e) {
    r.fail(std::string("bad header JSON: ") + e.what());
  }
  if (info.num_chunks != (info.num_tokens + info.chunk_tokens - 1) / info.chunk_tokens)
    r.fail("num_chunks disagrees with num_tokens / chunk_tokens");
  for (size_t l = 0; l < info.ladder.size(); ++l)
    if ((info.ladder[l].method == Method::Text) != (l + 1 == info.ladder.size()))
      r.fail("the ladder's last level, and only it, must be the text level");
  const size_t L = info.ladder.size();
  const uint64_t entries = uint64_t(info.num_chunks) * L;
  if (entries * 8 + 4 > r.left()) r.fail("truncated index");
  const size_t index_at = r.pos;
  r.pos += size_t(entries) * 8;
  if (r.u32("index crc") != crc32c(all.data() + index_at, size_t(entries) * 8))
    r.fail("index CRC32C mismatch");
  r.pos = index_at;
  cr.offset_.resize(entries);
  cr.size_.resize(entries);
  cr.crc_.resize(entries);
  uint64_t off = index_at + entries * 8 + 4;
  for (uint64_t i = 0; i < entries; ++i) {
    cr.size_[i] = r.u32("blob size");
    cr.crc_[i] = r.u32("blob crc");
    // Shape x tokens bounded by the file: every blob is at least what its method needs for them.
    const uint32_t c = uint32_t(i / L);
    const LadderLevel& lv = info.ladder[i % L];
    const uint64_t need = min_blob_bytes(lv.method, info.shape, info.chunk_end(c) - info.chunk_begin(c));
    if (cr.size_[i] < need)
      r.fail("chunk " + std::to_string(c) + " level " + lv.name + ": blob of " + std::to_string(cr.size_[i]) +
             " bytes is smaller than " + std::to_string(need) + ", the least its method needs for the model shape");
    cr.offset_[i] = off;
    off += cr.size_[i];
  }
  if (off != all.size())
    r.fail("blob sizes sum to " + std::to_string(off) + " but the file has " + std::to_string(all.size()) + " bytes");
  return cr;
}

ContainerReader ContainerReader::open(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw file_error("cannot open " + path);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  try {
    return parse(std::move(bytes));
  } catch (const CorruptBlob& e) {
    throw CorruptBlob(path + ": " + e.what());
  }
}

uint32_t ContainerReader::blob_size(uint32_t chunk, int level) const {
  if (chunk >= info_.num_chunks || level < 0 || size_t(level) >= info_.ladder.size())
    throw std::out_of_range("container: no chunk " + std::to_string(chunk) + " level " + std::to_string(level));
  return size_[size_t(chunk) * info_.ladder.size() + level];
}

uint32_t ContainerReader::blob_crc(uint32_t chunk, int level) const {
  blob_size(chunk, level);
  return crc_[size_t(chunk) * info_.ladder.size() + level];
}

std::span<const uint8_t> ContainerReader::blob(uint32_t chunk, int level) const {
  const size_t n = blob_size(chunk, level), i = size_t(chunk) * info_.ladder.size() + level;
  std::span<const uint8_t> b(bytes_.data() + offset_[i], n);
  if (crc32c(b.data(), b.size()) != crc_[i])
    throw CorruptBlob("container: chunk " + std::to_string(chunk) + " level " + info_.ladder[level].name +
                      ": CRC32C mismatch");
  return b;
}

std::vector<int32_t> ContainerReader::tokens(uint32_t chunk) const {
  const auto b = blob(chunk, text_level());
  const BlobHeader h = parse_blob_header(b);
  if (h.method != Method::Text || h.first_pos != info_.chunk_begin(chunk) ||
      h.first_pos + h.tokens != info_.chunk_end(chunk))
    throw CorruptBlob("container: text blob of chunk " + std::to_string(chunk) + " is inconsistent");
  return text_tokens(b, h);
}

KvCache decode_container(const ContainerReader& r, const Profile* profile, int level, uint32_t first,
                         uint32_t last, bool pre_rope, int threads) {
  const ContainerInfo& info = r.info();
  if (first >= last || last > info.num_chunks)
    throw std::out_of_range("decode_container: chunk range [" + std::to_string(first) + ", " +
                            std::to_string(last) + ") outside 0.." + std::to_string(info.num_chunks));
  if (level < 0 || size_t(level) >= info.ladder.size()) throw std::out_of_range("decode_container: bad level");
  const LadderLevel& lv = info.ladder[level];
  if (lv.method == Method::Text) throw std::invalid_argument("decode_container: text carries no KV (recompute it)");
  LevelDecodeTables tables;
  if (lv.method == Method::Quant) {
    if (!profile) throw std::invalid_argument("decode_container: level " + lv.name + " needs the profile");
    if (profile->hash() != info.profile_hash)
      throw std::invalid_argument("decode_container: the container was made with another profile");
    if (!(profile->shape == info.shape))  // it names this profile but claims another shape
      throw CorruptBlob("container: model shape differs from its profile's");
    tables = build_decode_tables(*profile, lv.profile_level);
  }
  // Every blob of the range is checked against the index (CRC, method, positions, shape) before
  // the output is allocated; the output's size is then what the file's blob sizes bound (parse()).
  const int text = r.text_level();
  for (uint32_t c = first; c < last; ++c) {
    const BlobHeader h = parse_blob_header(r.blob(c, level));
    if (h.first_pos != info.chunk_begin(c) || h.first_pos + h.tokens != info.chunk_end(c) ||
        h.method != lv.method || !(h.shape == info.shape) ||
        (lv.method == Method::Quant && h.level != lv.profile_level))
      throw CorruptBlob("container: blob of chunk " + std::to_string(c) + " level " + lv.name +
                        " does not match the index");
    const BlobHeader th = parse_blob_header(r.blob(c, text));
    if (th.method != Method::Text || th.first_pos != h.first_pos || th.tokens != h.tokens)
      throw CorruptBlob("container: text blob of chunk " + std::to_string(c) + " is inconsistent");
  }
  const uint32_t base = uint32_t(info.chunk_begin(first));
  KvCache out(info.shape, info.model_name, info.rope_theta, pre_rope);
  out.resize(info.chunk_end(last - 1) - base);
  parallel_for(last - first, threads, [&](size_t i) {
    const uint32_t c = first + uint32_t(i);
    decode_chunk(r.blob(c, level), profile, out, lv.method == Method::Quant ? &tables : nullptr, base);
    const auto tb = r.blob(c, text);
    const auto ids = text_tokens(tb, parse_blob_header(tb));
    std::copy(ids.begin(), ids.end(), out.tokens.begin() + ptrdiff_t(info.chunk_begin(c) - base));
  });
  return out;
}

}  // namespace kvstream::codec
