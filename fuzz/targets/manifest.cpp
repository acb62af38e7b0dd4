// Fuzz target manifest: a MANIFEST payload (the largest and most structured message: levels,
// chunk table, bit-packed token ids) decoded, re-encoded and decoded again (wire_check.h), then
// turned into the controller's view (spec_from_manifest) as the receiver does.
// Input: the payload bytes.
#include "fuzz/target.h"
#include "fuzz/wire_check.h"
#include "streamer/context_source.h"

using namespace kvstream;

KVSTREAM_FUZZ_TARGET(manifest) {
  streamer::Frame f;
  f.type = streamer::FrameType::kManifest;
  f.payload.assign(input.begin(), input.end());
  return fuzz::guard([&] {
    fuzz::round_trip(f, streamer::decode_manifest);
    const streamer::Manifest m = streamer::decode_manifest(f);
    const streamer::StreamSpec spec = streamer::spec_from_manifest(m);
    KVSTREAM_FUZZ_CHECK(spec.total_tokens() == m.num_tokens);
  });
}
