// Wire protocol implementation: frame header, CRC32C, message (de)serialisation with validation.
#include "streamer/wire.h"

#include "codec/crc32c.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <cmath>
#include <cstring>

namespace kvstream::streamer {

namespace {

constexpr size_t kMiB = 1024 * 1024;

class Writer {
 public:
  void u8(uint8_t v) { b_.push_back(v); }
  void u16(uint16_t v) { for (int i = 0; i < 2; ++i) b_.push_back(uint8_t(v >> (8 * i))); }
  void u32(uint32_t v) { for (int i = 0; i < 4; ++i) b_.push_back(uint8_t(v >> (8 * i))); }
  void u64(uint64_t v) { for (int i = 0; i < 8; ++i) b_.push_back(uint8_t(v >> (8 * i))); }
  void f64(double d) {
    uint64_t v;
    std::memcpy(&v, &d, 8);
    u64(v);
  }
  void str(const std::string& s, size_t max) {
    if (s.size() > max) throw ProtocolError("string field longer than " + std::to_string(max));
    u16(uint16_t(s.size()));
    b_.insert(b_.end(), s.begin(), s.end());
  }
  void bytes(const std::vector<uint8_t>& v) {
    u32(uint32_t(v.size()));
    b_.insert(b_.end(), v.begin(), v.end());
  }
  template <size_t N>
  void fixed(const std::array<uint8_t, N>& a) {
    b_.insert(b_.end(), a.begin(), a.end());
  }
  std::vector<uint8_t>& data() { return b_; }

 private:
  std::vector<uint8_t> b_;
};

class Reader {
 public:
  Reader(const Frame& f, FrameType expect) : p_(f.payload) {
    if (f.type != expect)
      throw ProtocolError(std::string("expected ") + frame_type_name(expect) + " frame, got " +
                          frame_type_name(f.type));
    what_ = frame_type_name(expect);
  }
  void need(size_t n) {
    if (p_.size() - pos_ < n) throw ProtocolError(what_ + " frame truncated");
  }
  uint8_t u8() { need(1); return p_[pos_++]; }
  uint16_t u16() {
    need(2);
    uint16_t v = uint16_t(p_[pos_] | (p_[pos_ + 1] << 8));
    pos_ += 2;
    return v;
  }
  uint32_t u32() {
    need(4);
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t(p_[pos_ + i]) << (8 * i);
    pos_ += 4;
    return v;
  }
  uint64_t u64() {
    need(8);
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t(p_[pos_ + i]) << (8 * i);
    pos_ += 8;
    return v;
  }
  double f64() {
    uint64_t v = u64();
    double d;
    std::memcpy(&d, &v, 8);
    if (!std::isfinite(d)) throw ProtocolError(what_ + " frame has a non-finite number");
    return d;
  }
  std::string str(size_t max) {
    uint16_t n = u16();
    if (n > max) throw ProtocolError(what_ + " string field too long (" + std::to_string(n) + ")");
    need(n);
    std::string s(reinterpret_cast<const char*>(p_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  std::vector<uint8_t> bytes(size_t max) {
    uint32_t n = u32();
    if (n > max) throw ProtocolError(what_ + " byte field too long");
    need(n);
    std::vector<uint8_t> v(p_.begin() + long(pos_), p_.begin() + long(pos_ + n));
    pos_ += n;
    return v;
  }
  template <size_t N>
  std::array<uint8_t, N> fixed() {
    need(N);
    std::array<uint8_t, N> a;
    std::memcpy(a.data(), p_.data() + pos_, N);
    pos_ += N;
    return a;
  }
  void done() {
    if (pos_ != p_.size()) throw ProtocolError(what_ + " frame has trailing bytes");
  }
  const std::string& what() const { return what_; }

 private:
  const std::vector<uint8_t>& p_;
  size_t pos_ = 0;
  std::string what_;
};

bool valid_hash(const std::string& h) {
  if (h.empty() || h.size() > 64) return false;
  for (char c : h)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::vector<uint8_t> frame_of(FrameType t, Writer& w) { return encode_frame(t, w.data()); }

// ---- controller (issue 14): the link report's encoding ----
// u8 flags (bit 0 valid, bit 1 app-limited; others 0); if valid: u32 srtt_us, u32 min_rtt_us,
// u32 cwnd_bytes, u32 delivery_kBps, u32 notsent_bytes.
void put_link_report(Writer& w, const LinkReport& r) {
  w.u8(uint8_t((r.valid ? 1 : 0) | (r.valid && r.app_limited ? 2 : 0)));
  if (!r.valid) return;
  w.u32(r.srtt_us);
  w.u32(r.min_rtt_us);
  w.u32(r.cwnd_bytes);
  w.u32(r.delivery_kBps);
  w.u32(r.notsent_bytes);
}
LinkReport get_link_report(Reader& r) {
  const uint8_t flags = r.u8();
  if (flags & ~3u) throw ProtocolError(r.what() + " link report has unknown flags");
  LinkReport l;
  if (!(flags & 1)) {
    if (flags) throw ProtocolError(r.what() + " link report flags set without a report");
    return l;
  }
  l.valid = true;
  l.app_limited = flags & 2;
  l.srtt_us = r.u32();
  l.min_rtt_us = r.u32();
  l.cwnd_bytes = r.u32();
  l.delivery_kBps = r.u32();
  l.notsent_bytes = r.u32();
  return l;
}
// ---- end controller (issue 14) ----

// Bytes of num_tokens ids packed at `bits` bits each.
size_t packed_id_bytes(uint32_t num_tokens, unsigned bits) { return size_t((uint64_t(num_tokens) * bits + 7) / 8); }

}  // namespace

uint32_t crc32c(const uint8_t* data, size_t n, uint32_t crc) { return codec::crc32c(data, n, crc); }

size_t max_payload(FrameType t) {
  switch (t) {
    case FrameType::kHello: return 256;
    case FrameType::kHelloAck: return 256;
    case FrameType::kRequest: return 1024;
    case FrameType::kManifest: return 4 * kMiB;
    case FrameType::kProfileGet: return 256;
    case FrameType::kProfile: return 64 * kMiB;
    case FrameType::kChunkGet: return 16;
    case FrameType::kChunkData: return 64 * kMiB;
    case FrameType::kError: return 2048;
    case FrameType::kEnd: return 0;
    // ---- version 3 ----
    case FrameType::kCancel: return 16;
    case FrameType::kAuth: return 64;
    case FrameType::kAuthOk: return 64;
  }
  return 0;
}

bool sent_by(FrameType t, Peer from) {
  switch (t) {
    case FrameType::kHello:
    case FrameType::kRequest:
    case FrameType::kProfileGet:
    case FrameType::kChunkGet:
    case FrameType::kCancel:
    case FrameType::kAuth:
      return from == Peer::kReceiver;
    case FrameType::kHelloAck:
    case FrameType::kManifest:
    case FrameType::kProfile:
    case FrameType::kChunkData:
    case FrameType::kAuthOk:
      return from == Peer::kSender;
    case FrameType::kError:
    case FrameType::kEnd:
      return true;
  }
  return false;
}

const char* frame_type_name(FrameType t) {
  switch (t) {
    case FrameType::kHello: return "HELLO";
    case FrameType::kHelloAck: return "HELLO_ACK";
    case FrameType::kRequest: return "REQUEST";
    case FrameType::kManifest: return "MANIFEST";
    case FrameType::kProfileGet: return "PROFILE_GET";
    case FrameType::kProfile: return "PROFILE";
    case FrameType::kChunkGet: return "CHUNK_GET";
    case FrameType::kChunkData: return "CHUNK_DATA";
    case FrameType::kError: return "ERROR";
    case FrameType::kEnd: return "END";
    case FrameType::kCancel: return "CANCEL";
    case FrameType::kAuth: return "AUTH";
    case FrameType::kAuthOk: return "AUTH_OK";
  }
  return "UNKNOWN";
}

namespace {
bool known_frame_type(uint8_t t) { return std::strcmp(frame_type_name(FrameType(t)), "UNKNOWN") != 0; }
}  // namespace

std::vector<uint8_t> encode_frame(FrameType type, const std::vector<uint8_t>& payload) {
  if (payload.size() > max_payload(type))
    throw ProtocolError(std::string(frame_type_name(type)) + " payload exceeds its limit");
  std::vector<uint8_t> out(kHeaderSize + payload.size());
  std::memcpy(out.data(), kMagic.data(), 4);
  out[4] = uint8_t(kProtocolVersion & 0xFF);
  out[5] = uint8_t(kProtocolVersion >> 8);
  out[6] = uint8_t(type);
  out[7] = 0;
  const uint32_t len = uint32_t(payload.size());
  for (int i = 0; i < 4; ++i) out[8 + i] = uint8_t(len >> (8 * i));
  if (!payload.empty()) std::memcpy(out.data() + kHeaderSize, payload.data(), payload.size());
  uint32_t crc = crc32c(out.data(), 12);
  crc = crc32c(payload.data(), payload.size(), crc);
  for (int i = 0; i < 4; ++i) out[12 + i] = uint8_t(crc >> (8 * i));
  return out;
}

FrameHeader decode_header(const uint8_t* h) {
  if (std::memcmp(h, kMagic.data(), 4) != 0) throw ProtocolError("bad frame magic (not a kvstream peer?)");
  const uint16_t version = uint16_t(h[4] | (h[5] << 8));
  if (version != kProtocolVersion)
    throw ProtocolError("unsupported protocol version " + std::to_string(version) + " (this peer speaks " +
                        std::to_string(kProtocolVersion) + ")");
  const uint8_t type = h[6];
  if (!known_frame_type(type)) throw ProtocolError("unknown frame type " + std::to_string(type));
  if (h[7] != 0) throw ProtocolError("nonzero frame flags");
  FrameHeader fh;
  fh.type = FrameType(type);
  for (int i = 0; i < 4; ++i) fh.length |= uint32_t(h[8 + i]) << (8 * i);
  for (int i = 0; i < 4; ++i) fh.crc |= uint32_t(h[12 + i]) << (8 * i);
  if (fh.length > max_payload(fh.type))
    throw ProtocolError(std::string(frame_type_name(fh.type)) + " frame of " + std::to_string(fh.length) +
                        " bytes exceeds its limit of " + std::to_string(max_payload(fh.type)));
  return fh;
}

FrameHeader decode_header(const uint8_t* h, Peer from, size_t max_len) {
  const FrameHeader fh = decode_header(h);
  if (!sent_by(fh.type, from))
    throw ProtocolError(std::string(from == Peer::kReceiver ? "a receiver" : "a sender") + " may not send " +
                        frame_type_name(fh.type) + " frames");
  if (fh.length > max_len)
    throw ProtocolError(std::string(frame_type_name(fh.type)) + " frame of " + std::to_string(fh.length) +
                        " bytes exceeds the " + std::to_string(max_len) + " bytes accepted now");
  return fh;
}

void check_crc(const uint8_t* header, const std::vector<uint8_t>& payload, uint32_t crc) {
  uint32_t c = crc32c(header, 12);
  c = crc32c(payload.data(), payload.size(), c);
  if (c != crc) throw ProtocolError("frame checksum mismatch (corrupted data)");
}

void FrameReader::feed(const uint8_t* data, size_t n) {
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  buf_.insert(buf_.end(), data, data + n);
}

uint16_t FrameReader::pending_version() const {
  if (buffered() < 6) return 0;
  return header_version(buf_.data() + pos_);
}

std::optional<Frame> FrameReader::next() {
  if (buffered() < kHeaderSize) return std::nullopt;
  const uint8_t* h = buf_.data() + pos_;
  // Checked before the payload is waited for: a hostile length never makes this reader buffer more
  // than what was fed, and never more than its limit.
  const FrameHeader fh = from_ ? decode_header(h, *from_, max_payload_) : decode_header(h);
  if (buffered() < kHeaderSize + fh.length) return std::nullopt;
  Frame f;
  f.type = fh.type;
  f.payload.assign(h + kHeaderSize, h + kHeaderSize + fh.length);
  check_crc(h, f.payload, fh.crc);
  pos_ += kHeaderSize + fh.length;
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  return f;
}

namespace {
bool valid_name(const std::string& id, size_t max) {
  if (id.empty() || id.size() > max) return false;
  for (char c : id)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) return false;
  return id != "." && id != "..";
}
}  // namespace

bool valid_context_id(const std::string& id) { return valid_name(id, 128); }
bool valid_tenant(const std::string& name) { return valid_name(name, 64); }

kvstream::ErrorCode error_code_of(WireErrorCode c) {
  using E = kvstream::ErrorCode;
  switch (c) {
    case WireErrorCode::kBadFrame: return E::kProtocol;
    case WireErrorCode::kVersion: return E::kVersion;
    case WireErrorCode::kUnknownContext: return E::kUnknownContext;
    case WireErrorCode::kBadRequest: return E::kInvalidArgument;
    case WireErrorCode::kInternal: return E::kInternal;
    case WireErrorCode::kTimeout: return E::kTimeout;
    case WireErrorCode::kAuth: return E::kAuth;
    case WireErrorCode::kBusy: return E::kResourceExhausted;
  }
  return E::kInternal;
}

WireErrorCode wire_error_of(kvstream::ErrorCode c) {
  using E = kvstream::ErrorCode;
  switch (c) {
    case E::kProtocol:
    case E::kCorrupt: return WireErrorCode::kBadFrame;
    case E::kVersion: return WireErrorCode::kVersion;
    case E::kNotFound:
    case E::kUnknownContext: return WireErrorCode::kUnknownContext;
    case E::kInvalidArgument: return WireErrorCode::kBadRequest;
    case E::kTimeout:
    case E::kStalled: return WireErrorCode::kTimeout;
    case E::kAuth: return WireErrorCode::kAuth;
    case E::kResourceExhausted: return WireErrorCode::kBusy;
    default: return WireErrorCode::kInternal;
  }
}

kvstream::Error error_from_wire(WireErrorCode c, const std::string& message) {
  return kvstream::Error(error_code_of(c), "sender error: " + message);
}

int manifest_level_index(const Manifest& m, uint16_t level_id) {
  for (size_t i = 0; i < m.levels.size(); ++i)
    if (m.levels[i].id == level_id) return int(i);
  return -1;
}

// ---- encoders ----
std::vector<uint8_t> encode(const Hello& m) {
  Writer w;
  w.u16(m.min_version);
  w.u16(m.max_version);
  w.str(m.agent, 64);
  if (!m.tenant.empty() && !valid_tenant(m.tenant)) throw ProtocolError("invalid tenant name '" + m.tenant + "'");
  w.str(m.tenant, 64);
  w.fixed(m.client_nonce);
  return frame_of(FrameType::kHello, w);
}
std::vector<uint8_t> encode(const HelloAck& m) {
  Writer w;
  w.u16(m.version);
  w.u32(m.max_chunk_bytes);
  w.str(m.agent, 64);
  w.u8(uint8_t(m.auth));
  w.fixed(m.server_nonce);
  return frame_of(FrameType::kHelloAck, w);
}
std::vector<uint8_t> encode(const Request& m) {
  if (!valid_context_id(m.context_id)) throw ProtocolError("invalid context id '" + m.context_id + "'");
  Writer w;
  w.str(m.context_id, 128);
  w.u32(m.slo_ms);
  w.str(m.policy, 64);
  return frame_of(FrameType::kRequest, w);
}
std::vector<uint8_t> encode(const Manifest& m) {
  Writer w;
  w.str(m.context_id, 128);
  w.str(m.profile_hash, 64);
  w.u64(m.profile_bytes);
  w.u32(m.num_tokens);
  w.u16(uint16_t(m.levels.size()));
  for (const auto& l : m.levels) {
    w.u16(l.id);
    w.str(l.name, 32);
    w.f64(l.agreement);
    w.f64(l.ppl_delta_pct);
  }
  w.u32(uint32_t(m.chunks.size()));
  for (const auto& c : m.chunks) {
    if (c.level_bytes.size() != m.levels.size()) throw ProtocolError("manifest chunk level count mismatch");
    w.u32(c.token_begin);
    w.u32(c.num_tokens);
    w.u32(c.text_bytes);
    for (uint32_t b : c.level_bytes) w.u32(b);
  }
  if (m.token_ids.size() != m.num_tokens) throw ProtocolError("manifest token id count differs from num_tokens");
  if (m.num_tokens > kMaxManifestTokens) throw ProtocolError("manifest has more tokens than the protocol allows");
  // Token ids bit-packed at the width of the largest id (e.g. 9 bits for a 512-token vocabulary):
  // the manifest is on the critical path of every fetch.
  uint32_t max_id = 0;
  for (int32_t t : m.token_ids) {
    if (t < 0) throw ProtocolError("manifest token id out of range");
    max_id = std::max(max_id, uint32_t(t));
  }
  const unsigned bits = std::max(1, int(std::bit_width(max_id)));
  w.u8(uint8_t(bits));
  std::vector<uint8_t> packed(packed_id_bytes(m.num_tokens, bits), 0);
  uint64_t bit = 0;
  for (int32_t t : m.token_ids) {
    for (unsigned i = 0; i < bits; ++i, ++bit)
      if ((uint32_t(t) >> i) & 1u) packed[bit / 8] |= uint8_t(1u << (bit % 8));
  }
  for (uint8_t b : packed) w.u8(b);
  put_link_report(w, m.link);  // controller (issue 14)
  return frame_of(FrameType::kManifest, w);
}
std::vector<uint8_t> encode(const ProfileGet& m) {
  Writer w;
  w.str(m.profile_hash, 64);
  return frame_of(FrameType::kProfileGet, w);
}
std::vector<uint8_t> encode(const ProfileData& m) {
  Writer w;
  w.str(m.profile_hash, 64);
  w.bytes(m.bytes);
  return frame_of(FrameType::kProfile, w);
}
std::vector<uint8_t> encode(const ChunkGet& m) {
  Writer w;
  w.u32(m.index);
  w.u16(m.level);
  return frame_of(FrameType::kChunkGet, w);
}
std::vector<uint8_t> encode(const ChunkData& m) {
  Writer w;
  w.u32(m.index);
  w.u16(m.level);
  // controller (issue 14): status and link report
  if (m.status > kChunkCancelled) throw ProtocolError("CHUNK_DATA status out of range");
  if (m.status == kChunkCancelled && !m.blob.empty()) throw ProtocolError("a cancelled CHUNK_DATA carries no blob");
  w.u8(m.status);
  put_link_report(w, m.link);
  w.bytes(m.blob);
  return frame_of(FrameType::kChunkData, w);
}
// controller (issue 14)
std::vector<uint8_t> encode(const Cancel& m) {
  Writer w;
  w.u32(m.index);
  w.u16(m.replacement);
  return frame_of(FrameType::kCancel, w);
}
std::vector<uint8_t> encode(const ErrorMsg& m) {
  Writer w;
  w.u16(uint16_t(m.code));
  w.str(m.message.substr(0, 1024), 1024);
  return frame_of(FrameType::kError, w);
}
std::vector<uint8_t> encode(const AuthMsg& m) {
  Writer w;
  w.fixed(m.proof);
  return frame_of(FrameType::kAuth, w);
}
std::vector<uint8_t> encode(const AuthOk& m) {
  Writer w;
  w.fixed(m.proof);
  return frame_of(FrameType::kAuthOk, w);
}
std::vector<uint8_t> encode_end() { return encode_frame(FrameType::kEnd, {}); }

namespace {
// Header + fields of a frame whose payload is fields || tail (the tail written separately).
std::vector<uint8_t> frame_head(FrameType type, const std::vector<uint8_t>& fields, const std::vector<uint8_t>& tail) {
  if (fields.size() + tail.size() > max_payload(type))
    throw ProtocolError(std::string(frame_type_name(type)) + " payload exceeds its limit");
  std::vector<uint8_t> out(kHeaderSize + fields.size());
  std::memcpy(out.data(), kMagic.data(), 4);
  out[4] = uint8_t(kProtocolVersion & 0xFF);
  out[5] = uint8_t(kProtocolVersion >> 8);
  out[6] = uint8_t(type);
  out[7] = 0;
  const uint32_t len = uint32_t(fields.size() + tail.size());
  for (int i = 0; i < 4; ++i) out[8 + i] = uint8_t(len >> (8 * i));
  std::memcpy(out.data() + kHeaderSize, fields.data(), fields.size());
  uint32_t crc = crc32c(out.data(), 12);
  crc = crc32c(fields.data(), fields.size(), crc);
  crc = crc32c(tail.data(), tail.size(), crc);
  for (int i = 0; i < 4; ++i) out[12 + i] = uint8_t(crc >> (8 * i));
  return out;
}
}  // namespace

std::vector<uint8_t> encode_chunk_data_head(uint32_t index, uint16_t level, const LinkReport& link,
                                            const std::vector<uint8_t>& blob) {
  Writer w;
  w.u32(index);
  w.u16(level);
  w.u8(kChunkServed);
  put_link_report(w, link);
  w.u32(uint32_t(blob.size()));
  return frame_head(FrameType::kChunkData, w.data(), blob);
}

std::vector<uint8_t> encode_profile_head(const std::string& hash, const std::vector<uint8_t>& profile) {
  Writer w;
  w.str(hash, 64);
  w.u32(uint32_t(profile.size()));
  return frame_head(FrameType::kProfile, w.data(), profile);
}

std::vector<uint8_t> encode_error_for_version(const ErrorMsg& m, uint16_t version) {
  if (version < 1 || version > kProtocolVersion) throw ProtocolError("no such protocol version");
  auto f = encode(m);
  if (version == kProtocolVersion) return f;
  f[4] = uint8_t(version & 0xFF);
  f[5] = uint8_t(version >> 8);
  uint32_t crc = crc32c(f.data(), 12);
  crc = crc32c(f.data() + kHeaderSize, f.size() - kHeaderSize, crc);
  for (int i = 0; i < 4; ++i) f[12 + i] = uint8_t(crc >> (8 * i));
  return f;
}

uint16_t header_version(const uint8_t* h) {
  if (std::memcmp(h, kMagic.data(), 4) != 0) return 0;
  return uint16_t(h[4] | (h[5] << 8));
}

// ---- decoders ----
Hello decode_hello(const Frame& f) {
  Reader r(f, FrameType::kHello);
  Hello m;
  m.min_version = r.u16();
  m.max_version = r.u16();
  m.agent = r.str(64);
  m.tenant = r.str(64);
  m.client_nonce = r.fixed<kNonceBytes>();
  r.done();
  if (m.min_version > m.max_version) throw ProtocolError("HELLO version range is empty");
  if (!m.tenant.empty() && !valid_tenant(m.tenant)) throw ProtocolError("HELLO has an invalid tenant name");
  return m;
}
HelloAck decode_hello_ack(const Frame& f) {
  Reader r(f, FrameType::kHelloAck);
  HelloAck m;
  m.version = r.u16();
  m.max_chunk_bytes = r.u32();
  m.agent = r.str(64);
  const uint8_t auth = r.u8();
  m.server_nonce = r.fixed<kNonceBytes>();
  r.done();
  if (auth > uint8_t(AuthMode::kHmacSha256)) throw ProtocolError("HELLO_ACK has an unknown authentication mode");
  m.auth = AuthMode(auth);
  if (m.version != kProtocolVersion) throw ProtocolError("sender chose unsupported version");
  if (m.max_chunk_bytes > max_payload(FrameType::kChunkData))
    throw ProtocolError("HELLO_ACK max_chunk_bytes exceeds the frame limit");
  return m;
}
Request decode_request(const Frame& f) {
  Reader r(f, FrameType::kRequest);
  Request m;
  m.context_id = r.str(128);
  m.slo_ms = r.u32();
  m.policy = r.str(64);
  r.done();
  if (!valid_context_id(m.context_id)) throw ProtocolError("REQUEST has an invalid context id");
  return m;
}
Manifest decode_manifest(const Frame& f) {
  Reader r(f, FrameType::kManifest);
  Manifest m;
  m.context_id = r.str(128);
  m.profile_hash = r.str(64);
  m.profile_bytes = r.u64();
  m.num_tokens = r.u32();
  if (m.num_tokens > kMaxManifestTokens)
    throw ProtocolError("MANIFEST num_tokens " + std::to_string(m.num_tokens) + " exceeds the limit of " +
                        std::to_string(kMaxManifestTokens));
  const uint16_t nl = r.u16();
  if (nl < 1 || nl > 64) throw ProtocolError("MANIFEST level count out of range");
  for (int i = 0; i < nl; ++i) {
    ManifestLevel l;
    l.id = r.u16();
    l.name = r.str(32);
    l.agreement = r.f64();
    l.ppl_delta_pct = r.f64();
    if (l.id == kTextLevel) throw ProtocolError("MANIFEST uses the reserved text level id");
    if (l.agreement < 0 || l.agreement > 1) throw ProtocolError("MANIFEST level agreement out of [0,1]");
    if (manifest_level_index(m, l.id) >= 0) throw ProtocolError("MANIFEST has duplicate level ids");
    m.levels.push_back(std::move(l));
  }
  const uint32_t nc = r.u32();
  if (nc < 1 || nc > 4096) throw ProtocolError("MANIFEST chunk count out of range");
  r.need(size_t(nc) * (12 + 4 * size_t(nl)));
  uint64_t next_token = 0;
  for (uint32_t i = 0; i < nc; ++i) {
    ManifestChunk c;
    c.token_begin = r.u32();
    c.num_tokens = r.u32();
    c.text_bytes = r.u32();
    for (int j = 0; j < nl; ++j) {
      c.level_bytes.push_back(r.u32());
      if (c.level_bytes.back() == 0 || c.level_bytes.back() > max_payload(FrameType::kChunkData) - kMaxChunkDataFields)
        throw ProtocolError("MANIFEST chunk size out of range");
    }
    if (c.token_begin != next_token || c.num_tokens == 0)
      throw ProtocolError("MANIFEST chunks are not contiguous token ranges");
    if (c.text_bytes > max_payload(FrameType::kChunkData) - kMaxChunkDataFields)
      throw ProtocolError("MANIFEST text size out of range");
    next_token += c.num_tokens;
    m.chunks.push_back(std::move(c));
  }
  if (next_token != m.num_tokens) throw ProtocolError("MANIFEST chunk tokens do not sum to num_tokens");
  const unsigned bits = r.u8();
  if (bits < 1 || bits > 31)
    throw ProtocolError("MANIFEST token id width " + std::to_string(bits) + " bits out of range (1..31)");
  const size_t nbytes = packed_id_bytes(m.num_tokens, bits);
  r.need(nbytes);  // before allocating: the ids must all be in the payload
  std::vector<uint8_t> packed(nbytes);
  for (auto& b : packed) b = r.u8();
  m.token_ids.resize(m.num_tokens);
  uint64_t bit = 0;
  for (uint32_t t = 0; t < m.num_tokens; ++t) {
    uint32_t id = 0;
    for (unsigned i = 0; i < bits; ++i, ++bit) id |= uint32_t((packed[bit / 8] >> (bit % 8)) & 1u) << i;
    m.token_ids[t] = int32_t(id);  // < 2^31: at most 31 bits
  }
  for (; bit < uint64_t(nbytes) * 8; ++bit)
    if ((packed[bit / 8] >> (bit % 8)) & 1u) throw ProtocolError("MANIFEST token id padding bits are not zero");
  m.link = get_link_report(r);  // controller (issue 14)
  r.done();
  if (!valid_context_id(m.context_id)) throw ProtocolError("MANIFEST has an invalid context id");
  if (!valid_hash(m.profile_hash)) throw ProtocolError("MANIFEST profile hash is not lowercase hex");
  if (m.profile_bytes > max_payload(FrameType::kProfile) - 128)
    throw ProtocolError("MANIFEST profile size exceeds the profile frame limit");
  return m;
}
ProfileGet decode_profile_get(const Frame& f) {
  Reader r(f, FrameType::kProfileGet);
  ProfileGet m;
  m.profile_hash = r.str(64);
  r.done();
  if (!valid_hash(m.profile_hash)) throw ProtocolError("PROFILE_GET hash is not lowercase hex");
  return m;
}
ProfileData decode_profile(const Frame& f) {
  Reader r(f, FrameType::kProfile);
  ProfileData m;
  m.profile_hash = r.str(64);
  m.bytes = r.bytes(max_payload(FrameType::kProfile));
  r.done();
  if (!valid_hash(m.profile_hash)) throw ProtocolError("PROFILE hash is not lowercase hex");
  return m;
}
ChunkGet decode_chunk_get(const Frame& f) {
  Reader r(f, FrameType::kChunkGet);
  ChunkGet m;
  m.index = r.u32();
  m.level = r.u16();
  r.done();
  return m;
}
ChunkData decode_chunk_data(const Frame& f) {
  Reader r(f, FrameType::kChunkData);
  ChunkData m;
  m.index = r.u32();
  m.level = r.u16();
  // controller (issue 14): status and link report
  m.status = r.u8();
  if (m.status > kChunkCancelled) throw ProtocolError("CHUNK_DATA status " + std::to_string(m.status) + " unknown");
  m.link = get_link_report(r);
  m.blob = r.bytes(max_payload(FrameType::kChunkData));
  if (m.status == kChunkCancelled && !m.blob.empty()) throw ProtocolError("a cancelled CHUNK_DATA carries a blob");
  r.done();
  return m;
}
// controller (issue 14)
Cancel decode_cancel(const Frame& f) {
  Reader r(f, FrameType::kCancel);
  Cancel m;
  m.index = r.u32();
  m.replacement = r.u16();
  r.done();
  return m;
}
ErrorMsg decode_error(const Frame& f) {
  Reader r(f, FrameType::kError);
  ErrorMsg m;
  const uint16_t code = r.u16();
  if (code < 1 || code > uint16_t(WireErrorCode::kBusy)) throw ProtocolError("ERROR frame has an unknown code");
  m.code = WireErrorCode(code);
  m.message = r.str(1024);
  r.done();
  return m;
}

namespace {
// AUTH and AUTH_OK: one 32-byte HMAC each.
Mac decode_proof(const Frame& f, FrameType t) {
  Reader r(f, t);
  const Mac m = r.fixed<32>();
  r.done();
  return m;
}
}  // namespace
AuthMsg decode_auth(const Frame& f) { return AuthMsg{decode_proof(f, FrameType::kAuth)}; }
AuthOk decode_auth_ok(const Frame& f) { return AuthOk{decode_proof(f, FrameType::kAuthOk)}; }

}  // namespace kvstream::streamer
