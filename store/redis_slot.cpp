// Key -> slot (see redis_slot.h).
#include "store/redis_slot.h"

#include <array>

namespace kvstream::store::redis {
namespace {

// Byte-at-a-time table of CRC-16/XMODEM: table[b] = CRC of the single byte b (MSB first).
constexpr std::array<uint16_t, 256> make_table() {
  std::array<uint16_t, 256> t{};
  for (int b = 0; b < 256; ++b) {
    uint16_t c = uint16_t(b << 8);
    for (int i = 0; i < 8; ++i) c = (c & 0x8000) ? uint16_t((c << 1) ^ 0x1021) : uint16_t(c << 1);
    t[size_t(b)] = c;
  }
  return t;
}
constexpr auto kTable = make_table();

}  // namespace

uint16_t crc16(std::string_view data) {
  uint16_t crc = 0;
  for (unsigned char c : data) crc = uint16_t((crc << 8) ^ kTable[((crc >> 8) ^ c) & 0xFF]);
  return crc;
}

std::string_view hash_tag(std::string_view key) {
  const size_t open = key.find('{');
  if (open == std::string_view::npos) return key;
  const size_t close = key.find('}', open + 1);
  if (close == std::string_view::npos || close == open + 1) return key;
  return key.substr(open + 1, close - open - 1);
}

uint16_t key_slot(std::string_view key) { return uint16_t(crc16(hash_tag(key)) % kSlots); }

}  // namespace kvstream::store::redis
