// fuzz/wire_check.h: decodes one wire frame with the decoder of its type, and checks that what a
// decoder accepts the encoder writes back to a frame that decodes to the same bytes again
// (encode(decode(encode(decode(f)))) == encode(decode(f))). Shared by the wire targets.
#pragma once
#include <optional>

#include "fuzz/target.h"
#include "streamer/wire.h"

namespace kvstream::fuzz {

inline streamer::Frame frame_of_bytes(const std::vector<uint8_t>& bytes) {
  streamer::FrameReader r;
  r.feed(bytes.data(), bytes.size());
  std::optional<streamer::Frame> f = r.next();
  KVSTREAM_FUZZ_CHECK(f.has_value() && r.buffered() == 0);
  return std::move(*f);
}

// decode(f) -> encode -> decode -> encode: both encodings must be equal, and each must be one
// complete frame. Throws what the first decode throws (ProtocolError for a bad payload).
template <class Decode>
void round_trip(const streamer::Frame& f, Decode decode) {
  const auto m = decode(f);
  std::vector<uint8_t> e1;
  try {
    e1 = streamer::encode(m);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "encoder refuses a message its decoder accepted: %s\n", e.what());
    std::abort();
  }
  const auto e2 = streamer::encode(decode(frame_of_bytes(e1)));
  KVSTREAM_FUZZ_CHECK(e1 == e2);
}

// Dispatches on the frame's type (every message, both directions).
inline void check_message(const streamer::Frame& f) {
  using namespace streamer;
  switch (f.type) {
    case FrameType::kHello: return round_trip(f, decode_hello);
    case FrameType::kHelloAck: return round_trip(f, decode_hello_ack);
    case FrameType::kRequest: return round_trip(f, decode_request);
    case FrameType::kManifest: return round_trip(f, decode_manifest);
    case FrameType::kProfileGet: return round_trip(f, decode_profile_get);
    case FrameType::kProfile: return round_trip(f, decode_profile);
    case FrameType::kChunkGet: return round_trip(f, decode_chunk_get);
    case FrameType::kChunkData: return round_trip(f, decode_chunk_data);
    case FrameType::kError: return round_trip(f, decode_error);
    case FrameType::kCancel: return round_trip(f, decode_cancel);
    case FrameType::kAuth: return round_trip(f, decode_auth);
    case FrameType::kAuthOk: return round_trip(f, decode_auth_ok);
    case FrameType::kEnd:
      if (!f.payload.empty()) throw ProtocolError("END frame with a payload");
      return;
  }
  throw ProtocolError("no decoder for frame type " + std::to_string(int(f.type)));
}

}  // namespace kvstream::fuzz
