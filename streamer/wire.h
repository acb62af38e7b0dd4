// The kvstream wire protocol (docs/PROTOCOL.md, version 2): frame layout, message types and their
// encode/decode functions. Pure functions on bytes; no sockets here.
//
// Contract: every frame is a 16-byte header (magic "KVSP", version, type, flags, payload length,
// CRC32C over header bytes 0..11 and the payload) followed by the payload. decode_* functions
// validate every field and throw ProtocolError with a clear message on anything malformed:
// unknown type, payload over the type's hard limit, bad CRC, truncated or trailing bytes,
// out-of-range counts. FrameReader parses frames incrementally from a byte stream and never
// allocates more than the type's limit. A frame of another version (e.g. a version-1 peer) is
// rejected with "unsupported protocol version N (this peer speaks 2)".
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
// Version 3: CANCEL, the sender's link report in MANIFEST and CHUNK_DATA (docs/PROTOCOL.md).
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
  // ---- controller (issue 14) ----
  kCancel = 11,      // receiver -> sender: replace (or drop) a requested chunk not yet being sent
};
constexpr uint8_t kLastFrameType = uint8_t(FrameType::kCancel);

// Hard payload limit per frame type (bytes). A header announcing more is rejected before any read.
size_t max_payload(FrameType t);
const char* frame_type_name(FrameType t);

// CRC32C (Castagnoli), software table implementation.
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
// Checks the CRC of a complete frame (header + payload); throws ProtocolError on mismatch.
void check_crc(const uint8_t* header, const std::vector<uint8_t>& payload, uint32_t crc);

// Incremental decoder: feed() any bytes, next() yields complete validated frames.
class FrameReader {
 public:
  void feed(const uint8_t* data, size_t n);
  std::optional<Frame> next();
  size_t buffered() const { return buf_.size() - pos_; }

 private:
  std::vector<uint8_t> buf_;
  size_t pos_ = 0;
};

// ---- messages ----
constexpr uint16_t kTextLevel = 0xFFFF;  // "level" value meaning: send the chunk's token ids

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
  std::string agent;  // free text, <= 64 bytes
};
struct HelloAck {
  uint16_t version = kProtocolVersion;
  uint32_t max_chunk_bytes = 0;  // largest chunk payload this sender will send
  std::string agent;
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
};
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
std::vector<uint8_t> encode(const Cancel&);
std::vector<uint8_t> encode_end();
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
Cancel decode_cancel(const Frame&);

bool valid_context_id(const std::string& id);
// Index of a level id in the manifest's level list; -1 if absent.
int manifest_level_index(const Manifest& m, uint16_t level_id);

}  // namespace kvstream::streamer
