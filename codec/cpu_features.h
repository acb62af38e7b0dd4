// cpu_features.h: what the host CPU (and its OS) can run, read once with CPUID.
//
// Contract: cpu_features() returns the same value on every call (detected on the first, thread
// safe). A feature is reported only when the CPU has it and, for the AVX families, the OS saves
// the registers it uses (XCR0), so a path chosen from it cannot fault. Everything is false on
// other architectures. Written with CPUID rather than __builtin_cpu_supports, whose feature names
// differ between compilers (clang 14 knows no "f16c" or "bmi2").
#pragma once

namespace kvstream::codec {

struct CpuFeatures {
  bool sse42 = false;    // CRC32C instruction
  bool popcnt = false;
  bool avx2 = false;     // with the OS saving YMM state
  bool f16c = false;     // with the OS saving YMM state
  bool bmi2 = false;
  bool avx512f = false;  // with the OS saving ZMM and opmask state
};

const CpuFeatures& cpu_features();

}  // namespace kvstream::codec
