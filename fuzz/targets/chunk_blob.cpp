// Fuzz target chunk_blob: one chunk blob (codec/chunk_codec.h) as a receiver gets it in a
// CHUNK_DATA frame: parse_blob_header(), parse_quant_layout() for Quant blobs, then decode_chunk()
// with the real profile into a 128-row cache of the real model's shape.
// Input: mode byte (target.h; re-seal = recompute the blob's trailing CRC32C), then the blob.
#include "codec/chunk_codec.h"
#include "fuzz/fixture.h"
#include "fuzz/reseal.h"
#include "fuzz/target.h"

using namespace kvstream;

KVSTREAM_FUZZ_TARGET(chunk_blob) {
  fuzz::Split in = fuzz::split_mode(input);
  if (in.reseal) fuzz::reseal_trailer(in.bytes);
  const codec::Profile& profile = testing::test_profile();
  KvCache& out = fuzz::output_cache();
  return fuzz::guard([&] {
    const codec::BlobHeader h = codec::parse_blob_header(in.bytes);
    const codec::LevelDecodeTables* tables = nullptr;
    if (h.method == codec::Method::Quant) {
      const codec::QuantLayout lay = codec::parse_quant_layout(in.bytes, h);
      KVSTREAM_FUZZ_CHECK(lay.offset.size() == size_t(lay.streams) + 1 && lay.offset.back() <= in.bytes.size());
      if (h.level < profile.levels.size()) tables = &testing::test_tables(h.level);
    }
    codec::decode_chunk(in.bytes, &profile, out, tables, 0);
  });
}
