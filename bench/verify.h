// Verification of a fetched KV cache against a local decode of the same plan (the reliability
// suite's "bit-exact" check): every chunk fetched at a level must equal the container's own decode
// of that chunk at that level, and every chunk fetched (or fallen back) as text must equal the
// model's recompute of its tokens on the fetched earlier chunks, bit for bit, with the context's
// token ids throughout.
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
