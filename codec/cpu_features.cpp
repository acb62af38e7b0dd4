#include "codec/cpu_features.h"

#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace kvstream::codec {
namespace {

#if defined(__x86_64__) || defined(__i386__)
bool bit(unsigned reg, int n) { return (reg >> n) & 1u; }

// XCR0: which register states the OS saves on a context switch (needs CPUID.1:ECX.OSXSAVE).
uint64_t xcr0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  f.sse42 = bit(c, 20);
  f.popcnt = bit(c, 23);
  const uint64_t os = bit(c, 27) ? xcr0() : 0;  // OSXSAVE
  const bool ymm = (os & 0x6) == 0x6;             // SSE + AVX state
  const bool zmm = ymm && (os & 0xE0) == 0xE0;    // opmask + ZMM0-15 upper + ZMM16-31
  f.f16c = ymm && bit(c, 29) && bit(c, 28);      // F16C and AVX
  if (__get_cpuid_max(0, nullptr) >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = ymm && bit(b, 5);
    f.bmi2 = bit(b, 8);
    f.avx512f = zmm && bit(b, 16);
  }
  return f;
}
#else
CpuFeatures detect() { return {}; }
#endif

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

}  // namespace kvstream::codec
