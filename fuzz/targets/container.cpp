// Fuzz target container: a .kvs file (codec/container.h) as the sender loads it: parse(), the
// MANIFEST built from it (its token ids come from tokens()), every blob (CRC-checked), then
// decode_container() of one (chunk, level) chosen by the input's size, with the profile of the
// narrow real KV the seeds are made of (fixture.h).
// Input: mode byte (target.h; re-seal = recompute header, index and blob CRCs), then the file.
#include "codec/container.h"
#include "fuzz/fixture.h"
#include "fuzz/reseal.h"
#include "fuzz/target.h"
#include "fuzz/wire_check.h"
#include "streamer/context_source.h"

using namespace kvstream;

KVSTREAM_FUZZ_TARGET(container) {
  fuzz::Split in = fuzz::split_mode(input);
  if (in.reseal) fuzz::reseal_container(in.bytes);
  const codec::Profile& profile = fuzz::small_profile();
  const size_t size = in.bytes.size();
  return fuzz::guard([&] {
    const codec::ContainerReader r = codec::ContainerReader::parse(std::move(in.bytes));
    const codec::ContainerInfo& info = r.info();
    uint64_t tokens = 0;
    for (uint32_t c = 0; c < info.num_chunks; ++c) {
      const std::vector<int32_t> ids = r.tokens(c);
      KVSTREAM_FUZZ_CHECK(ids.size() == info.chunk_end(c) - info.chunk_begin(c));
      tokens += ids.size();
      for (int l = 0; l < int(info.ladder.size()); ++l) r.blob(c, l);
    }
    KVSTREAM_FUZZ_CHECK(tokens == info.num_tokens);
    const streamer::Manifest m = streamer::manifest_from_container("fuzz", r, 0);
    fuzz::round_trip(fuzz::frame_of_bytes(streamer::encode(m)), streamer::decode_manifest);
    const int level = int(size % info.ladder.size());
    const codec::LadderLevel& lv = info.ladder[size_t(level)];
    if (lv.method == codec::Method::Text) return;  // text carries no KV
    const bool quant = lv.method == codec::Method::Quant;
    if (quant && info.profile_hash != fuzz::small_profile_hash()) return;  // only this profile is at hand
    const uint32_t chunk = uint32_t(size / info.ladder.size() % info.num_chunks);
    const KvCache kv = codec::decode_container(r, quant ? &profile : nullptr, level, chunk, chunk + 1,
                                               size % 2 == 0, 1);
    KVSTREAM_FUZZ_CHECK(kv.num_tokens() == info.chunk_end(chunk) - info.chunk_begin(chunk));
  });
}
