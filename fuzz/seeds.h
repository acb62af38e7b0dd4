// fuzz/seeds.h: seed inputs for every fuzz target, made at run time from the real data (the
// stories260K KV fixture, the bundled model, tokenizer and traces), so that the committed corpus
// stays empty: fuzz_seeds writes them for scripts/bench_fuzz.sh, and fuzz_replay checks under ctest
// that every one of them is accepted by its target.
//
// Seeds are complete target inputs (with the mode byte of target.h where the target has one; such
// targets get each file twice, mode 0 and mode 1). They are kept small (a few KiB) so that the
// fuzzer runs fast; real_files() names the full-size real files, replayed by ctest only.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kvstream::fuzz {

struct Seed {
  std::string name;  // file name in the corpus directory
  std::vector<uint8_t> bytes;
};

// Seeds of `target` (empty for an unknown target name).
std::vector<Seed> make_seeds(const std::string& target);
// Whether inputs of `target` start with the mode byte (target.h).
bool has_mode_byte(const std::string& target);
// Full-size real files `target` must accept as they are (mode byte added where it has one).
std::vector<Seed> real_files(const std::string& target);

}  // namespace kvstream::fuzz
