// Fuzz target tokenizer: a llama2.c tokenizer file (model/tokenizer.h) parsed by
// Tokenizer::parse(); the parsed vocabulary then encodes and decodes a fixed sentence (a hostile
// vocabulary drives the merge loop). Input: the file.
#include "fuzz/target.h"
#include "model/tokenizer.h"

using namespace kvstream;

KVSTREAM_FUZZ_TARGET(tokenizer) {
  return fuzz::guard([&] {
    const model::Tokenizer t = model::Tokenizer::parse({input.begin(), input.end()}, "fuzz");
    const std::vector<int32_t> ids = t.encode("Once upon a time, Lily saw a \xc3\xa9 bird.", true, true);
    KVSTREAM_FUZZ_CHECK(!ids.empty());  // BOS and EOS at least (a vocabulary may merge BOS away)
    for (int32_t id : ids) KVSTREAM_FUZZ_CHECK(id >= 0 && id < t.vocab_size());
    t.detokenize(ids);
  });
}
