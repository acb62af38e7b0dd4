// The kvstream wire protocol (docs/PROTOCOL.md, version 3): frame layout, message types and their
// encode/decode functions. Pure functions on bytes; no sockets here.
//
// Contract: every frame is a 16-byte header (magic "KVSP", version, type, flags, payload length,
// CRC32C over header bytes 0..11 and the payload) followed by the payload. decode_* functions
// validate every field and throw ProtocolError with a clear message on anything malformed:
// unknown type, payload over the type's hard limit, bad CRC, truncated or trailing bytes,
// out-of-range counts. FrameReader parses frames incrementally from a byte stream: it checks each
// header (type, direction, the owner's current payload limit) before buffering the payload, and
// buffers only bytes that have arrived. A frame of another version (e.g. a version-2 peer) is
// rejected with "unsupported protocol version N (this peer speaks 3)".
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "kvstream/error.h"

namespace kvstream::streamer {

// Version 2: the MANIFEST carries the context's token ids (version 1 did not).
// Version 3 (docs/PROTOCOL.md): direction-checked frames, the authenticated handshake (AUTH,
// AUTH_OK), ERROR codes AUTH and BUSY; CANCEL, the sender's link report in MANIFEST and CHUNK_DATA.
constexpr uint16_t kProtocolVersion = 3;
constexpr size_t kHeaderSize = 16;
constexpr std::array<uint8_t, 4> kMagic = {'K', 'V', 'S', 'P'};

// A malformed or unexpected frame from the peer; code() is kvstream::ErrorCode::kProtocol.
struct ProtocolError : kvstream::Error {
  explicit ProtocolError(const std::string& what) : kvstream::Error(kvstream::ErrorCode::kProtocol, what) {}
};

enum class FrameType : uint8_t {
  kHello = 1,        // receiver -> sender: versions supported
  kHelloAck = 2,     // sender -> receiver: version chosen, limits
  kRequest = 3,      // receiver -> sender: context id, SLO, policy hint
  kManifest = 4,     // sender -> receiver: chunks, level sizes, ladder quality, profile hash
  kProfileGet = 5,   // receiver -> sender: please send the profile with this hash
  kProfile = 6,      // sender -> receiver: profile file bytes
  kChunkGet = 7,     // receiver -> sender: chunk i at level L (or text)
  kChunkData = 8,    // sender -> receiver: chunk i's blob at level L
  kError = 9,        // either way: code + message; the connection closes after it
  kEnd = 10,         // receiver -> sender: done; sender -> receiver: goodbye
  // ---- version 3: controller (issue 14) ----
  kCancel = 11,      // receiver -> sender: replace (or drop) a requested chunk not yet being sent
  // ---- version 3: authentication (hardening) ----
  kAuth = 12,        // receiver -> sender: HMAC proof of the tenant's secret
  kAuthOk = 13,      // sender -> receiver: the sender's HMAC proof (mutual authentication)
};
constexpr uint8_t kLastFrameType = uint8_t(FrameType::kAuthOk);

// Who sent a frame. Every type has one direction (ERROR and END both): a peer reading a frame of
// the other direction rejects it from its header, before reading the payload.
enum class Peer : uint8_t { kReceiver, kSender };
bool sent_by(FrameType t, Peer from);
// Largest payload a peer reads before its peer is authenticated (docs/PROTOCOL.md, "Reading
// rules"); every receiver-to-sender frame is within it.
constexpr size_t kMaxPreAuthPayload = 4096;

// Hard payload limit per frame type (bytes). A header announcing more is rejected before any read.
size_t max_payload(FrameType t);
const char* frame_type_name(FrameType t);

// CRC32C (Castagnoli): the codec's one implementation (codec/crc32c.h).
uint32_t crc32c(const uint8_t* data, size_t n, uint32_t crc = 0);

struct Frame {
  FrameType type{};
  std::vector<uint8_t> payload;
};

std::vector<uint8_t> encode_frame(FrameType type, const std::vector<uint8_t>& payload);

// Parsed frame header (after validating magic, version, type and the length limit).
struct FrameHeader {
  FrameType type{};
  uint32_t length = 0;
  uint32_t crc = 0;
};
FrameHeader decode_header(const uint8_t* h);  // h points at kHeaderSize bytes
// decode_header, then the direction rule (a frame `from` may send) and the reader's current limit
// (the frame's length <= max_payload); throws ProtocolError naming what was refused.
FrameHeader decode_header(const uint8_t* h, Peer from, size_t max_payload);
// Checks the CRC of a complete frame (header + payload); throws ProtocolError on mismatch.
void check_crc(const uint8_t* header, const std::vector<uint8_t>& payload, uint32_t crc);

// Incremental decoder: feed() any bytes, next() yields complete validated frames. With `from`
// set, frames are direction-checked and their length is held to max_payload() (settable as the
// session advances), both from the header alone, before the payload is buffered. The buffer holds
// only bytes that were fed (at most one read beyond the current frame).
class FrameReader {
 public:
  FrameReader() = default;
  FrameReader(Peer from, size_t max_payload) : from_(from), max_payload_(max_payload) {}
  void feed(const uint8_t* data, size_t n);
  std::optional<Frame> next();
  size_t buffered() const { return buf_.size() - pos_; }
  // The version field of the buffered frame header (0 if under 6 bytes or not a kvstream magic).
  uint16_t pending_version() const;
  void set_max_payload(size_t n) { max_payload_ = n; }
  size_t max_payload() const { return max_payload_; }

 private:
  std::vector<uint8_t> buf_;
  size_t pos_ = 0;
  std::optional<Peer> from_;
  size_t max_payload_ = SIZE_MAX;
};

// ---- messages ----
constexpr uint16_t kTextLevel = 0xFFFF;  // "level" value meaning: send the chunk's token ids

constexpr size_t kNonceBytes = 32;
using Nonce = std::array<uint8_t, kNonceBytes>;
using Mac = std::array<uint8_t, 32>;  // HMAC-SHA256

// ---- controller (issue 14): the sender's link report, CANCEL, CHUNK_DATA status ----
// What the sender's TCP connection looked like when it answered (Linux TCP_INFO). Through a proxy
// (e.g. `kvstream relay`, which terminates TCP) it describes the sender's hop only.
struct LinkReport {
  bool valid = false;          // false: the sender could not read its TCP state
  bool app_limited = false;    // the delivery rate was limited by the sender, not the network
  uint32_t srtt_us = 0;        // smoothed RTT
  uint32_t min_rtt_us = 0;
  uint32_t cwnd_bytes = 0;     // congestion window x MSS
  uint32_t delivery_kBps = 0;  // most recent delivery rate, in 1000 bytes/s
  uint32_t notsent_bytes = 0;  // written by the sender, not yet sent by its TCP
  bool operator==(const LinkReport&) const = default;
};
constexpr size_t kLinkReportWireBytes = 21;  // when valid (1 when not)
// Most CHUNK_DATA payload bytes before the blob: index 4, level 2, status 1, link report (at most
// 21), blob length 4. A blob of n bytes needs a payload of at most n + kMaxChunkDataFields.
constexpr size_t kMaxChunkDataFields = 4 + 2 + 1 + kLinkReportWireBytes + 4;
// CHUNK_DATA status: the chunk's blob, or "cancelled" (after a CANCEL without replacement).
constexpr uint8_t kChunkServed = 0, kChunkCancelled = 1;
// CANCEL's replacement level meaning "no replacement: just drop it".
constexpr uint16_t kNoReplacement = 0xFFFE;
struct Cancel {
  uint32_t index = 0;
  uint16_t replacement = kNoReplacement;  // a manifest level id, kTextLevel, or kNoReplacement
};
// ---- end controller (issue 14) ----

struct Hello {
  uint16_t min_version = kProtocolVersion;
  uint16_t max_version = kProtocolVersion;
  std::string agent;   // free text, <= 64 bytes
  std::string tenant;  // version 3: "" (anonymous) or a valid_tenant() name
  Nonce client_nonce{};  // version 3: fresh random bytes (authenticated handshakes)
};
// How a sender authenticates receivers (HELLO_ACK's auth field).
enum class AuthMode : uint8_t { kNone = 0, kHmacSha256 = 1 };
struct HelloAck {
  uint16_t version = kProtocolVersion;
  uint32_t max_chunk_bytes = 0;  // largest chunk payload this sender will send
  std::string agent;
  AuthMode auth = AuthMode::kNone;  // version 3
  Nonce server_nonce{};             // version 3: fresh random bytes when auth != kNone, else 0
};
// ---- version 3: authentication (hardening) ----
struct AuthMsg {
  Mac proof{};  // HMAC-SHA256(tenant secret, "client" || transcript), auth.h
};
struct AuthOk {
  Mac proof{};  // HMAC-SHA256(tenant secret, "server" || transcript)
};
struct Request {
  std::string context_id;  // [A-Za-z0-9._-]{1,128}
  uint32_t slo_ms = 0;
  std::string policy;  // hint only (logged by the sender), <= 64 bytes
};
struct ManifestLevel {
  uint16_t id = 0;        // level id as the codec names it; kTextLevel is never a level id
  std::string name;       // <= 32 bytes
  double agreement = 1;   // measured top-1 agreement of this level (0..1)
  double ppl_delta_pct = 0;
};
struct ManifestChunk {
  uint32_t token_begin = 0;
  uint32_t num_tokens = 0;
  uint32_t text_bytes = 0;
  std::vector<uint32_t> level_bytes;  // one per manifest level, same order
};
// Most token ids a MANIFEST may carry (512 Ki tokens: at most 31 bits each, < 2 MiB, well inside
// the 4 MiB frame). On the wire they are bit-packed at the width of the largest id.
constexpr uint32_t kMaxManifestTokens = 1u << 19;

struct Manifest {
  std::string context_id;
  std::string profile_hash;  // hex, <= 64 chars
  uint64_t profile_bytes = 0;
  uint32_t num_tokens = 0;
  std::vector<ManifestLevel> levels;  // 1..64
  std::vector<ManifestChunk> chunks;  // 1..4096, contiguous token ranges from 0
  std::vector<int32_t> token_ids;     // num_tokens ids, each in [0, 2^31)
  LinkReport link;                    // (version 3) the sender's TCP state when it answered
};
struct ProfileGet {
  std::string profile_hash;
};
struct ProfileData {
  std::string profile_hash;
  std::vector<uint8_t> bytes;
};
struct ChunkGet {
  uint32_t index = 0;
  uint16_t level = 0;  // a manifest level id or kTextLevel
};

struct ChunkData {
  uint32_t index = 0;
  uint16_t level = 0;   // the level served (a CANCEL's replacement, when it reached the sender in time)
  uint8_t status = kChunkServed;  // kChunkCancelled: blob is empty
  LinkReport link;
  std::vector<uint8_t> blob;
};
// The code an ERROR frame carries (docs/PROTOCOL.md).
enum class WireErrorCode : uint16_t {
  kBadFrame = 1,
  kVersion = 2,
  kUnknownContext = 3,
  kBadRequest = 4,
  kInternal = 5,
  kTimeout = 6,
  // version 3
  kAuth = 7,   // authentication required or failed
  kBusy = 8,   // a limit or budget was reached (connections, tenant limit, memory)
};
// The one mapping between the wire's ERROR codes and kvstream::ErrorCode (both directions).
kvstream::ErrorCode error_code_of(WireErrorCode c);
WireErrorCode wire_error_of(kvstream::ErrorCode c);
// The error a receiver reports for a sender's ERROR frame: code mapped, "sender error: <message>".
kvstream::Error error_from_wire(WireErrorCode c, const std::string& message);
struct ErrorMsg {
  WireErrorCode code = WireErrorCode::kInternal;
  std::string message;  // <= 1024 bytes
};

std::vector<uint8_t> encode(const Hello&);
std::vector<uint8_t> encode(const HelloAck&);
std::vector<uint8_t> encode(const Request&);
std::vector<uint8_t> encode(const Manifest&);
std::vector<uint8_t> encode(const ProfileGet&);
std::vector<uint8_t> encode(const ProfileData&);
std::vector<uint8_t> encode(const ChunkGet&);
std::vector<uint8_t> encode(const ChunkData&);
std::vector<uint8_t> encode(const ErrorMsg&);
std::vector<uint8_t> encode(const AuthMsg&);
std::vector<uint8_t> encode(const AuthOk&);
std::vector<uint8_t> encode(const Cancel&);
std::vector<uint8_t> encode_end();
// The head of a frame whose last field's bytes (`tail`) are written after it from their own buffer
// (a blob shared with a cache): head + tail == the whole frame, i.e. encode_chunk_data_head(i, l,
// link, blob) + blob == encode(ChunkData{i, l, kChunkServed, link, blob}) and
// encode_profile_head(h, p) + p == encode(ProfileData{h, p}).
std::vector<uint8_t> encode_chunk_data_head(uint32_t index, uint16_t level, const LinkReport& link,
                                            const std::vector<uint8_t>& blob);
std::vector<uint8_t> encode_profile_head(const std::string& hash, const std::vector<uint8_t>& profile);
// An ERROR frame under an older version's header (1 .. kProtocolVersion; the header and the
// ERROR payload are the same in every version so far), so that an old peer can still read why it
// is turned away.
std::vector<uint8_t> encode_error_for_version(const ErrorMsg&, uint16_t version);
// The version field of a frame header whose magic is right; 0 for a bad magic.
uint16_t header_version(const uint8_t* h);

Hello decode_hello(const Frame&);
HelloAck decode_hello_ack(const Frame&);
Request decode_request(const Frame&);
Manifest decode_manifest(const Frame&);
ProfileGet decode_profile_get(const Frame&);
ProfileData decode_profile(const Frame&);
ChunkGet decode_chunk_get(const Frame&);
ChunkData decode_chunk_data(const Frame&);
ErrorMsg decode_error(const Frame&);
AuthMsg decode_auth(const Frame&);
AuthOk decode_auth_ok(const Frame&);
Cancel decode_cancel(const Frame&);

bool valid_context_id(const std::string& id);
// A tenant name: [A-Za-z0-9._-]{1,64}, not "." or ".." (it names the tenant's directory).
bool valid_tenant(const std::string& name);
// Index of a level id in the manifest's level list; -1 if absent.
int manifest_level_index(const Manifest& m, uint16_t level_id);

}  // namespace kvstream::streamer
