// Redis tier value frames and the context meta payload (see redis_value.h).
#include "store/redis_value.h"

#include <cstring>

#include "codec/bytes.h"
#include "codec/crc32c.h"

namespace kvstream::store::redis {
namespace {

constexpr char kMagic[4] = {'K', 'V', 'R', 'V'};
constexpr uint8_t kVersion = 1;
constexpr uint8_t kMetaVersion = 1;
constexpr uint32_t kMaxLevels = 255, kMaxName = 255;

using Reader = codec::ByteReader<CorruptValue>;

const char* kind_name(ValueKind k) {
  switch (k) {
    case ValueKind::kMeta: return "meta";
    case ValueKind::kBlob: return "blob";
    case ValueKind::kProfile: return "profile";
    case ValueKind::kIndex: return "index";
  }
  return "unknown";
}

void put_string(codec::ByteWriter& w, const std::string& s) {
  w.u16(uint16_t(s.size()));
  w.bytes(s.data(), s.size());
}

std::string get_string(Reader& r, const char* field, size_t max) {
  const uint16_t n = r.u16(field);
  if (n > max) r.fail(std::string(field) + " too long");
  const uint8_t* p = r.take(n, field);
  return std::string(reinterpret_cast<const char*>(p), n);
}

void put_f64(codec::ByteWriter& w, double v) {
  uint64_t b;
  std::memcpy(&b, &v, 8);
  w.u64(b);
}

double get_f64(Reader& r, const char* field) {
  const uint64_t b = r.u64(field);
  double v;
  std::memcpy(&v, &b, 8);
  return v;
}

void put_bytes(codec::ByteWriter& w, const std::vector<uint8_t>& b) {
  w.u32(uint32_t(b.size()));
  w.bytes(b.data(), b.size());
}

std::vector<uint8_t> get_bytes(Reader& r, const char* field) {
  const uint32_t n = r.u32(field);
  const uint8_t* p = r.take(n, field);
  return std::vector<uint8_t>(p, p + n);
}

}  // namespace

const char* layout_name(Layout l) { return l == Layout::kContext ? "context" : "chunk"; }

Layout parse_layout(std::string_view s) {
  if (s == "context") return Layout::kContext;
  if (s == "chunk") return Layout::kChunk;
  throw kvstream::Error(kvstream::ErrorCode::kInvalidArgument,
                        "Redis layout '" + std::string(s) + "' is neither context nor chunk");
}

std::string encode_value(const ValueId& id, std::span<const uint8_t> payload) {
  std::vector<uint8_t> out;
  out.reserve(kValueOverhead + payload.size());
  codec::ByteWriter w{out};
  w.bytes(kMagic, 4);
  w.u8(kVersion);
  w.u8(uint8_t(id.kind));
  w.u16(0);
  w.u64(id.key.hi);
  w.u64(id.key.lo);
  w.u64(id.generation);
  w.u32(id.chunk);
  w.u32(id.level);
  w.u32(uint32_t(payload.size()));
  w.bytes(payload.data(), payload.size());
  w.u32(codec::crc32c(out.data(), out.size()));
  return std::string(reinterpret_cast<const char*>(out.data()), out.size());
}

std::span<const uint8_t> decode_value(std::string_view bytes, const ValueId& want, ValueId* got) {
  const std::span<const uint8_t> all(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  const std::string what = std::string("Redis ") + kind_name(want.kind) + " value";
  if (all.size() < kValueOverhead) throw CorruptValue(what + ": " + std::to_string(all.size()) + " bytes is too short");
  Reader r{all, 0, what};
  if (std::memcmp(r.take(4, "magic"), kMagic, 4) != 0) r.fail("bad magic (not written by kvstream)");
  if (r.u8("version") != kVersion) r.fail("unsupported value version");
  ValueId id;
  id.kind = ValueKind(r.u8("kind"));
  r.u16("reserved");
  id.key.hi = r.u64("key");
  id.key.lo = r.u64("key");
  id.generation = r.u64("generation");
  id.chunk = r.u32("chunk");
  id.level = r.u32("level");
  const uint32_t n = r.u32("payload length");
  if (uint64_t(n) + kValueOverhead != all.size())
    r.fail("payload length " + std::to_string(n) + " disagrees with the value's " + std::to_string(all.size()) + " bytes");
  const size_t body = all.size() - 4;
  uint32_t stored = 0;
  for (int i = 0; i < 4; ++i) stored |= uint32_t(all[body + size_t(i)]) << (8 * i);
  if (codec::crc32c(all.data(), body) != stored) r.fail("CRC32C mismatch");
  if (id.kind != want.kind || id.key != want.key || id.chunk != want.chunk || id.level != want.level)
    r.fail("it was written as " + std::string(kind_name(id.kind)) + " " + id.key.hex() + " chunk " +
           std::to_string(id.chunk) + " level " + std::to_string(id.level) + ", not as asked");
  if (want.generation != 0 && id.generation != want.generation)
    throw StaleValue(what + ": it belongs to another generation of the context (stored again since)");
  if (got) *got = id;
  return all.subspan(r.pos, n);
}

std::vector<uint8_t> encode_meta(const ContextMeta& m) {
  const auto& man = m.manifest;
  std::vector<uint8_t> out;
  codec::ByteWriter w{out};
  w.u8(kMetaVersion);
  w.u8(uint8_t(m.layout));
  w.u32(uint32_t(m.text_level));
  w.u32(m.ladder_levels);
  w.u64(m.stored_bytes);
  put_string(w, man.profile_hash);
  w.u32(man.num_tokens);
  w.u32(uint32_t(man.levels.size()));
  for (const auto& l : man.levels) {
    w.u16(l.id);
    put_string(w, l.name);
    put_f64(w, l.agreement);
    put_f64(w, l.ppl_delta_pct);
  }
  w.u32(uint32_t(man.chunks.size()));
  for (const auto& c : man.chunks) {
    w.u32(c.token_begin);
    w.u32(c.num_tokens);
    w.u32(c.text_bytes);
    for (uint32_t b : c.level_bytes) w.u32(b);
  }
  w.u32(uint32_t(man.token_ids.size()));
  for (int32_t t : man.token_ids) w.u32(uint32_t(t));
  put_bytes(w, m.container_head);
  for (const auto& t : m.text_blobs) put_bytes(w, t);
  return out;
}

ContextMeta decode_meta(std::span<const uint8_t> payload) {
  Reader r{payload, 0, "Redis context meta"};
  ContextMeta m;
  if (r.u8("version") != kMetaVersion) r.fail("unsupported meta version");
  const uint8_t layout = r.u8("layout");
  if (layout > uint8_t(Layout::kChunk)) r.fail("unknown layout");
  m.layout = Layout(layout);
  m.text_level = int32_t(r.u32("text level"));
  m.ladder_levels = r.u32("ladder levels");
  m.stored_bytes = r.u64("stored bytes");
  auto& man = m.manifest;
  man.profile_hash = get_string(r, "profile hash", 64);
  man.num_tokens = r.u32("tokens");
  const uint32_t nlevels = r.u32("levels");
  if (nlevels == 0 || nlevels > kMaxLevels || nlevels >= m.ladder_levels + 1) r.fail("bad level count");
  if (m.ladder_levels > kMaxLevels + 1 || m.text_level < -1 || m.text_level >= int(m.ladder_levels))
    r.fail("bad ladder");
  for (uint32_t i = 0; i < nlevels; ++i) {
    streamer::ManifestLevel l;
    l.id = r.u16("level id");
    if (l.id >= m.ladder_levels || int(l.id) == m.text_level) r.fail("level id outside the ladder");
    l.name = get_string(r, "level name", kMaxName);
    l.agreement = get_f64(r, "agreement");
    l.ppl_delta_pct = get_f64(r, "ppl delta");
    man.levels.push_back(std::move(l));
  }
  const uint32_t nchunks = r.u32("chunks");
  const uint64_t chunk_bytes = 12 + 4 * uint64_t(nlevels);
  if (nchunks == 0 || uint64_t(nchunks) * chunk_bytes > r.left()) r.fail("bad chunk count");
  uint64_t next = 0;
  for (uint32_t c = 0; c < nchunks; ++c) {
    streamer::ManifestChunk ch;
    ch.token_begin = r.u32("token begin");
    ch.num_tokens = r.u32("chunk tokens");
    ch.text_bytes = r.u32("text bytes");
    if (ch.token_begin != next || ch.num_tokens == 0) r.fail("chunks are not contiguous");
    next += ch.num_tokens;
    for (uint32_t l = 0; l < nlevels; ++l) ch.level_bytes.push_back(r.u32("level bytes"));
    man.chunks.push_back(std::move(ch));
  }
  if (next != man.num_tokens) r.fail("chunks do not cover the tokens");
  const uint32_t ntok = r.u32("token ids");
  if (ntok != man.num_tokens || uint64_t(ntok) * 4 > r.left()) r.fail("bad token id count");
  man.token_ids.reserve(ntok);
  for (uint32_t i = 0; i < ntok; ++i) {
    const uint32_t t = r.u32("token id");
    if (t >= (1u << 31)) r.fail("token id out of range");
    man.token_ids.push_back(int32_t(t));
  }
  m.container_head = get_bytes(r, "container head");
  m.text_blobs.reserve(nchunks);
  for (uint32_t c = 0; c < nchunks; ++c) {
    m.text_blobs.push_back(get_bytes(r, "text blob"));
    if (m.text_blobs.back().size() != man.chunks[c].text_bytes) r.fail("text blob size disagrees with the manifest");
  }
  if (r.left() != 0) r.fail("trailing bytes");
  return m;
}

}  // namespace kvstream::store::redis
