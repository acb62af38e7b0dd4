// bytes.h (internal): little-endian byte writer and a bounds-checked reader for the codec's formats.
//
// Contract: ByteReader<E> never reads outside its span; any read past the end, or a varint longer
// than 10 bytes / overflowing 64 bits, throws E(what + ": " + reason).
#pragma once
#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

namespace kvstream::codec {

struct ByteWriter {
  std::vector<uint8_t>& out;
  void u8(uint8_t v) { out.push_back(v); }
  void u16(uint16_t v) { u8(v & 0xFF), u8(v >> 8); }
  void u32(uint32_t v) { u16(v & 0xFFFF), u16(v >> 16); }
  void u64(uint64_t v) { u32(uint32_t(v)), u32(uint32_t(v >> 32)); }
  void f32(float v) { u32(std::bit_cast<uint32_t>(v)); }
  void varint(uint64_t v) {
    while (v >= 0x80) u8(uint8_t(v) | 0x80), v >>= 7;
    u8(uint8_t(v));
  }
  void bytes(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  }
};

inline uint64_t zigzag(int64_t v) { return (uint64_t(v) << 1) ^ uint64_t(v >> 63); }
inline int64_t unzigzag(uint64_t v) { return int64_t(v >> 1) ^ -int64_t(v & 1); }

template <class E>
struct ByteReader {
  std::span<const uint8_t> data;
  size_t pos = 0;
  std::string what;

  [[noreturn]] void fail(const std::string& why) const { throw E(what + ": " + why); }
  size_t left() const { return data.size() - pos; }
  void need(size_t n, const char* field) const {
    if (n > left())
      fail(std::string("truncated reading ") + field + " at byte " + std::to_string(pos) +
           " (need " + std::to_string(n) + ", have " + std::to_string(left()) + ")");
  }
  const uint8_t* take(size_t n, const char* field) {
    need(n, field);
    const uint8_t* p = data.data() + pos;
    pos += n;
    return p;
  }
  uint8_t u8(const char* f) { return *take(1, f); }
  uint16_t u16(const char* f) { const uint8_t* p = take(2, f); return uint16_t(p[0] | p[1] << 8); }
  uint32_t u32(const char* f) {
    const uint8_t* p = take(4, f);
    return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
  }
  uint64_t u64(const char* f) { uint64_t lo = u32(f); return lo | uint64_t(u32(f)) << 32; }
  float f32(const char* f) { return std::bit_cast<float>(u32(f)); }
  // Inline for the one- and two-byte varints the formats mostly hold; longer ones and every
  // check-failing case go to varint_long (out of line, so this stays small enough to inline).
  uint64_t varint(const char* f) {
    if (left() >= 2) {
      const uint8_t* p = data.data() + pos;
      if (p[0] < 0x80) return pos += 1, p[0];
      if (p[1] < 0x80) return pos += 2, uint64_t(p[0] & 0x7F) | uint64_t(p[1]) << 7;
    }
    return varint_long(f);
  }
  [[gnu::noinline]] uint64_t varint_long(const char* f) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const uint8_t b = u8(f);
      if (shift == 63 && b > 1) fail(std::string("varint overflow in ") + f);
      v |= uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    fail(std::string("varint too long in ") + f);
  }
};

}  // namespace kvstream::codec
