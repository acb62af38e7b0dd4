// Fuzz target profile: a .kvprofile file (codec/profile.h) as the receiver gets it in a PROFILE
// frame: parse_profile(), then serialize_profile() of the result must parse back to the same
// bytes (the hash that containers name a profile by depends on it).
// Input: mode byte (target.h; re-seal = recompute the trailing CRC32C), then the file.
#include "codec/profile.h"
#include "fuzz/reseal.h"
#include "fuzz/target.h"

using namespace kvstream;

KVSTREAM_FUZZ_TARGET(profile) {
  fuzz::Split in = fuzz::split_mode(input);
  if (in.reseal) fuzz::reseal_trailer(in.bytes);
  return fuzz::guard([&] {
    const codec::Profile p = codec::parse_profile(in.bytes, "fuzz");
    const std::vector<uint8_t> again = codec::serialize_profile(p);
    KVSTREAM_FUZZ_CHECK(codec::serialize_profile(codec::parse_profile(again, "fuzz")) == again);
  });
}
