// Verification of a fetched KV cache against a local decode of the same plan (the reliability
// suite's "bit-exact" check): every chunk served at a level (the chosen one, or its hedge's when
// the hedge won, or its upgrade's) must equal the container's own decode of that chunk at that
// level, and every chunk served as text (chosen, or fallen back) must equal the model's recompute
// of its tokens on the earlier chunks as they stood before the upgrades (the pipeline recomputes a
// chunk once the earlier ones are ready and applies upgrades at the end), bit for bit, with the
// context's token ids throughout.
#pragma once
#include <string>

#include "codec/container.h"
#include "codec/profile.h"
#include "model/model.h"
#include "streamer/receiver.h"

namespace kvstream::streamer::bench {

// "" when `out` is exactly what its plan must produce, else what differs. `model` may be null only
// if no chunk is text.
std::string verify_fetch(const ReceiveOutcome& out, const codec::ContainerReader& container, const codec::Profile& profile,
                         const model::Model* model);

}  // namespace kvstream::streamer::bench
