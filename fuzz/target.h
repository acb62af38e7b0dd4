// fuzz/target.h: how a fuzz target is written once and run two ways.
//
// A target is a function of one input (bytes) declared with KVSTREAM_FUZZ_TARGET(name) { ... }
// in fuzz/targets/<name>.cpp. Built with KVSTREAM_LIBFUZZER (the clang build, KVSTREAM_FUZZ=ON)
// the file becomes a libFuzzer binary (LLVMFuzzerTestOneInput). Built without it (the default gcc
// build) the target registers itself by name, and fuzz_replay runs committed regression inputs
// and generated seeds through exactly the same function under ctest.
//
// Contract of a target body: return Outcome::kAccepted when the parser took the input and every
// consistency check on the result held, Outcome::kRejected when the parser refused it with the
// error its contract names. Anything else is a bug and must not be caught: an exception of
// another type (std::logic_error, std::bad_alloc, nlohmann's), a failed KVSTREAM_FUZZ_CHECK (which
// aborts), a sanitizer report, an allocation over libFuzzer's -malloc_limit_mb, a hang.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace kvstream::fuzz {

enum class Outcome { kAccepted, kRejected };
using Input = std::span<const uint8_t>;
using TargetFn = Outcome (*)(Input);

// Runs f(); kRejected if it throws std::runtime_error (kvstream::Error and the parsers' documented
// errors derive from it), kAccepted if it returns. Other exceptions propagate (a bug).
template <class F>
Outcome guard(F&& f) {
  try {
    f();
    return Outcome::kAccepted;
  } catch (const std::runtime_error&) {
    return Outcome::kRejected;
  }
}

// A property that must hold for every accepted input (e.g. a round trip): aborts otherwise, so
// libFuzzer saves the input as a crash and fuzz_replay's test fails.
#define KVSTREAM_FUZZ_CHECK(cond)                                                              \
  do {                                                                                         \
    if (!(cond)) {                                                                             \
      std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond);      \
      std::abort();                                                                            \
    }                                                                                          \
  } while (0)

// The mode byte that starts every input: bit 0 set = re-seal the input's checksums (CRC32C) where
// the format puts them before parsing, so that mutations reach the structural checks behind them;
// clear = parse the bytes as they are (a mutation must then be refused by its checksum).
struct Split {
  bool reseal = false;
  std::vector<uint8_t> bytes;
};
inline Split split_mode(Input in) {
  Split s;
  if (in.empty()) return s;
  s.reseal = in[0] & 1;
  s.bytes.assign(in.begin() + 1, in.end());
  return s;
}

struct Registry {
  struct Entry {
    const char* name;
    TargetFn fn;
  };
  static std::vector<Entry>& all() {
    static std::vector<Entry> v;
    return v;
  }
  struct Add {
    Add(const char* name, TargetFn fn) { all().push_back({name, fn}); }
  };
};

}  // namespace kvstream::fuzz

#ifdef KVSTREAM_LIBFUZZER
#define KVSTREAM_FUZZ_REGISTER(name)                                                 \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {          \
    kvstream_fuzz_body(kvstream::fuzz::Input(data, size));                          \
    return 0;                                                                        \
  }
#else
#define KVSTREAM_FUZZ_REGISTER(name) \
  static const kvstream::fuzz::Registry::Add kvstream_fuzz_add_##name(#name, &kvstream_fuzz_body);
#endif

#define KVSTREAM_FUZZ_TARGET(name)                                   \
  static kvstream::fuzz::Outcome kvstream_fuzz_body(kvstream::fuzz::Input); \
  KVSTREAM_FUZZ_REGISTER(name)                                       \
  static kvstream::fuzz::Outcome kvstream_fuzz_body([[maybe_unused]] kvstream::fuzz::Input input)
