// CRC-32C (crc32c.h): the SSE4.2 crc32 instruction where the CPU has it (three independent 8-byte
// lanes over thirds of the buffer, recombined with the zero-extension tables below, so the
// instruction's 3-cycle latency does not bound it), else software slicing-by-8. Both give the same
// value by definition; tests check them against each other and the standard check value.
#include "codec/crc32c.h"

#include <array>
#include <cstring>

#include "codec/cpu_features.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace kvstream::codec {
namespace {

constexpr uint32_t kPoly = 0x82F63B78u;  // reflected Castagnoli polynomial

// tab[k][b]: CRC of byte b followed by k zero bytes (slicing-by-8).
struct Tables {
  std::array<std::array<uint32_t, 256>, 8> t{};
  Tables() {
    for (uint32_t b = 0; b < 256; ++b) {
      uint32_t c = b;
      for (int i = 0; i < 8; ++i) c = (c >> 1) ^ (kPoly & (0u - (c & 1u)));
      t[0][b] = c;
    }
    for (int k = 1; k < 8; ++k)
      for (uint32_t b = 0; b < 256; ++b) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xFF];
  }
};
const Tables& tables() {
  static const Tables t;
  return t;
}

uint32_t crc32c_soft(const uint8_t* p, size_t n, uint32_t c) {  // c: the inverted running state
  const auto& t = tables().t;
  while (n >= 8) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + 4, 4);
    lo ^= c;  // little-endian hosts only (x86-64, aarch64)
    c = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
        t[3][hi & 0xFF] ^ t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n--) c = (c >> 8) ^ t[0][(c ^ *p++) & 0xFF];
  return c;
}

#if defined(__x86_64__)
// x^(8n) mod P applied to a CRC state: multiplication by a constant in GF(2)[x]/P, as 4 byte tables.
struct Shift {
  std::array<std::array<uint32_t, 256>, 4> t{};
  explicit Shift(size_t zero_bytes) {
    // The operator "append zero_bytes zero bytes" is linear: tabulate it on single set bits.
    for (int byte = 0; byte < 4; ++byte)
      for (uint32_t b = 0; b < 256; ++b) {
        uint32_t c = b << (8 * byte);
        for (size_t z = 0; z < zero_bytes; ++z) c = (c >> 8) ^ tables().t[0][c & 0xFF];
        t[size_t(byte)][b] = c;
      }
  }
  uint32_t operator()(uint32_t c) const {
    return t[0][c & 0xFF] ^ t[1][(c >> 8) & 0xFF] ^ t[2][(c >> 16) & 0xFF] ^ t[3][c >> 24];
  }
};
constexpr size_t kLane = 1024;  // bytes per lane per block in the 3-way loop
const Shift& shift_lane() {
  static const Shift s(kLane);
  return s;
}

__attribute__((target("sse4.2"))) uint32_t crc32c_hw(const uint8_t* p, size_t n, uint32_t c) {
  uint64_t c0 = c;
  if (n >= 3 * kLane) {
    const Shift& sh = shift_lane();
    while (n >= 3 * kLane) {
      uint64_t c1 = 0, c2 = 0;
      for (size_t i = 0; i < kLane; i += 8) {
        uint64_t a, b, d;
        std::memcpy(&a, p + i, 8);
        std::memcpy(&b, p + kLane + i, 8);
        std::memcpy(&d, p + 2 * kLane + i, 8);
        c0 = _mm_crc32_u64(c0, a);
        c1 = _mm_crc32_u64(c1, b);
        c2 = _mm_crc32_u64(c2, d);
      }
      // state after lane 0, shifted over lane 1, then lane 1's; likewise for lane 2
      c0 = sh(uint32_t(c0)) ^ uint32_t(c1);
      c0 = sh(uint32_t(c0)) ^ uint32_t(c2);
      p += 3 * kLane;
      n -= 3 * kLane;
    }
  }
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t a;
    std::memcpy(&a, p, 8);
    c0 = _mm_crc32_u64(c0, a);
  }
  uint32_t c32 = uint32_t(c0);
  for (; n; --n) c32 = _mm_crc32_u8(c32, *p++);
  return c32;
}
#endif

}  // namespace

uint32_t crc32c(const uint8_t* data, size_t n, uint32_t crc) {
#if defined(__x86_64__)
  if (cpu_features().sse42) return ~crc32c_hw(data, n, ~crc);
#endif
  return ~crc32c_soft(data, n, ~crc);
}

uint32_t crc32c_portable(const uint8_t* data, size_t n, uint32_t crc) { return ~crc32c_soft(data, n, ~crc); }

}  // namespace kvstream::codec
