// Fuzz target store_record: one stored record (store/record.h) as the disk tier reads it back:
// parse_record() with the store's key check, then serialize_record() must give the same bytes.
// Input: mode byte (target.h; re-seal = recompute the trailing CRC32C), then the record.
#include "fuzz/reseal.h"
#include "fuzz/target.h"
#include "store/record.h"

using namespace kvstream;

KVSTREAM_FUZZ_TARGET(store_record) {
  fuzz::Split in = fuzz::split_mode(input);
  if (in.reseal) fuzz::reseal_trailer(in.bytes);
  static const store::PrefixHasher hasher(64, "stories260K");
  return fuzz::guard([&] {
    const store::Record r = store::parse_record(in.bytes, &hasher);
    KVSTREAM_FUZZ_CHECK(store::serialize_record(r) == in.bytes);
  });
}
