// Fuzz target wire_frame: a byte stream from a peer, as the sender and receiver read it.
// Input: mode byte (target.h), then the stream. It is fed to a FrameReader in pieces of 1, 7, 64
// and 4096 bytes in turn; every complete frame goes to the decoder of its type (wire_check.h), and
// decode_header() also sees the first 16 bytes. A stream that ends inside a frame is refused.
#include "fuzz/reseal.h"
#include "fuzz/target.h"
#include "fuzz/wire_check.h"

using namespace kvstream;

KVSTREAM_FUZZ_TARGET(wire_frame) {
  fuzz::Split in = fuzz::split_mode(input);
  if (in.reseal) fuzz::reseal_frames(in.bytes);
  const std::vector<uint8_t>& b = in.bytes;
  return fuzz::guard([&] {
    if (b.size() >= streamer::kHeaderSize) streamer::decode_header(b.data());
    streamer::FrameReader reader;
    static constexpr size_t kPieces[] = {1, 7, 64, 4096};
    size_t at = 0;
    for (size_t i = 0; at < b.size(); ++i) {
      const size_t n = std::min(kPieces[i % 4], b.size() - at);
      reader.feed(b.data() + at, n);
      at += n;
      while (auto f = reader.next()) fuzz::check_message(*f);
    }
    if (reader.buffered() != 0) throw streamer::ProtocolError("stream ends inside a frame");
  });
}
