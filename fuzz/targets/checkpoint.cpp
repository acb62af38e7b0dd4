// Fuzz target checkpoint: a llama2.c model file (model/checkpoint.h) parsed by
// parse_checkpoint(): header bounds, and a length that must be exactly what the header implies.
// Input: the file.
#include "fuzz/target.h"
#include "model/checkpoint.h"

using namespace kvstream;

KVSTREAM_FUZZ_TARGET(checkpoint) {
  return fuzz::guard([&] {
    const model::Checkpoint ck = model::parse_checkpoint({input.begin(), input.end()}, "fuzz");
    KVSTREAM_FUZZ_CHECK(ck.config.file_bytes() == input.size());
    KVSTREAM_FUZZ_CHECK(ck.wq.size() == size_t(ck.config.n_layers) * ck.config.dim * ck.config.dim);
  });
}
