// kvstream/error.h — the one typed error of the kvstream library (public API).
//
// Contract: every exception the library throws on purpose is a kvstream::Error (or derives from
// it) and carries an ErrorCode saying which class of failure it is, so that a caller can react
// (retry, fall back to recompute, reject a request) without parsing messages. what() is a clear,
// human-readable message for logs; it names the file or peer involved where there is one and
// never names a command-line flag. Codes are stable: a code's number never changes meaning, new
// codes get new numbers. The wire protocol's ERROR codes map onto these (docs/PROTOCOL.md).
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace kvstream {

enum class ErrorCode : uint16_t {
  kInvalidArgument = 1,    // the caller passed something unusable (option, shape, layout, range)
  kNotFound = 2,           // a named file, context or store entry does not exist
  kIo = 3,                 // a local read/write failed (disk full, permission, short read)
  kCorrupt = 4,            // bytes fail their checks: CRC, magic, lengths, a bitstream that does not decode
  kProtocol = 5,           // a peer sent a malformed or unexpected frame
  kVersion = 6,            // no common protocol or format version
  kUnknownContext = 7,     // the sender does not serve the requested context
  kStalled = 8,            // the peer sent nothing for longer than the stall timeout
  kClosed = 9,             // the peer closed the connection before the work was complete
  kTimeout = 10,           // an overall deadline passed (connect, handshake, total)
  kAuth = 11,              // authentication failed or the tenant may not access this
  kResourceExhausted = 12, // a stated budget or limit was reached (memory, connections)
  kUnavailable = 13,       // a service cannot be reached (connect refused, cluster down)
  kCancelled = 14,         // the caller cancelled the operation
  kInternal = 15,          // a bug or an unexpected condition inside kvstream
};

// Stable lower-case name of a code ("invalid_argument", "corrupt", ...).
inline const char* error_code_name(ErrorCode c) {
  switch (c) {
    case ErrorCode::kInvalidArgument: return "invalid_argument";
    case ErrorCode::kNotFound: return "not_found";
    case ErrorCode::kIo: return "io";
    case ErrorCode::kCorrupt: return "corrupt";
    case ErrorCode::kProtocol: return "protocol";
    case ErrorCode::kVersion: return "version";
    case ErrorCode::kUnknownContext: return "unknown_context";
    case ErrorCode::kStalled: return "stalled";
    case ErrorCode::kClosed: return "closed";
    case ErrorCode::kTimeout: return "timeout";
    case ErrorCode::kAuth: return "auth";
    case ErrorCode::kResourceExhausted: return "resource_exhausted";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kCancelled: return "cancelled";
    case ErrorCode::kInternal: return "internal";
  }
  return "unknown";
}

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

}  // namespace kvstream
