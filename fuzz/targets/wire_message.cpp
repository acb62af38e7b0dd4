// Fuzz target wire_message: one frame's payload, straight to its decoder (no framing, no CRC), so
// that mutations reach every message decoder in both directions.
// Input: a frame type byte (taken modulo 16: unknown types must be refused), then the payload.
#include "fuzz/target.h"
#include "fuzz/wire_check.h"

using namespace kvstream;

KVSTREAM_FUZZ_TARGET(wire_message) {
  if (input.empty()) return fuzz::Outcome::kRejected;
  streamer::Frame f;
  f.type = streamer::FrameType(input[0] % 16);
  f.payload.assign(input.begin() + 1, input.end());
  return fuzz::guard([&] { fuzz::check_message(f); });
}
