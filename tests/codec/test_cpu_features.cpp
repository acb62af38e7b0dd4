// cpu_features(): CPUID read once; where the compiler can answer the same question
// (__builtin_cpu_supports, which also checks the OS-saved state), both must agree.
#include <catch2/catch.hpp>

#include "codec/cpu_features.h"
#include "codec/decode_engine.h"

using namespace kvstream::codec;

TEST_CASE("cpu_features agrees with the compiler's CPU checks and orders the decode paths", "[codec][cpu]") {
  const CpuFeatures& f = cpu_features();
  CHECK(&f == &cpu_features());  // detected once
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(__clang__)
  __builtin_cpu_init();
  CHECK(f.sse42 == bool(__builtin_cpu_supports("sse4.2")));
  CHECK(f.popcnt == bool(__builtin_cpu_supports("popcnt")));
  CHECK(f.avx2 == bool(__builtin_cpu_supports("avx2")));
  CHECK(f.f16c == bool(__builtin_cpu_supports("f16c")));
  CHECK(f.bmi2 == bool(__builtin_cpu_supports("bmi2")));
  CHECK(f.avx512f == bool(__builtin_cpu_supports("avx512f")));
#endif
  // AVX-512 is never chosen without AVX2, and the best path is one the CPU has.
  if (f.avx512f) CHECK(f.avx2);
  const DecodePath best = best_decode_path();
  if (best == DecodePath::Avx512) CHECK((f.avx512f && f.avx2 && f.f16c && f.bmi2));
  if (best == DecodePath::Avx2) CHECK((f.avx2 && f.f16c && f.bmi2 && f.popcnt));
  if (best == DecodePath::Scalar) CHECK_FALSE((f.avx2 && f.f16c && f.bmi2 && f.popcnt));
}
