// fuzz/reseal.h: recompute the checksums of a (mutated) input where its format puts them, so that
// a fuzzer's mutations get past the CRC32C and reach the structural checks behind it. Only the
// harnesses use this; every format here uses CRC-32C (Castagnoli), computed by codec::crc32c.
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>

#include <nlohmann/json.hpp>

#include "codec/crc32c.h"

namespace kvstream::fuzz {

inline uint32_t get_u32(const std::vector<uint8_t>& b, size_t at) {
  uint32_t v;
  std::memcpy(&v, b.data() + at, 4);
  return v;
}
inline void put_u32(std::vector<uint8_t>& b, size_t at, uint32_t v) { std::memcpy(b.data() + at, &v, 4); }

// Formats that end in the CRC of everything before it: chunk blobs, profiles, store records.
inline void reseal_trailer(uint8_t* p, size_t n) {
  if (n < 4) return;
  const uint32_t c = codec::crc32c(p, n - 4);
  std::memcpy(p + n - 4, &c, 4);
}
inline void reseal_trailer(std::vector<uint8_t>& b) { reseal_trailer(b.data(), b.size()); }

// A stream of wire frames: each 16-byte header's CRC (bytes 12..15) covers header bytes 0..11
// and the payload; a payload running past the end is left as it is.
inline void reseal_frames(std::vector<uint8_t>& b) {
  for (size_t at = 0; at + 16 <= b.size();) {
    const size_t len = get_u32(b, at + 8);
    if (len > b.size() - at - 16) return;
    const uint32_t c = codec::crc32c(b.data() + at + 16, len, codec::crc32c(b.data() + at, 12));
    put_u32(b, at + 12, c);
    at += 16 + len;
  }
}

// A .kvs container (docs/FORMAT.md): header CRC, each blob's trailer and index CRC, index CRC.
inline void reseal_container(std::vector<uint8_t>& b) {
  if (b.size() < 20) return;
  const size_t jlen = get_u32(b, 12);
  if (jlen > b.size() - 20) return;
  const size_t hdr_end = 16 + jlen;
  put_u32(b, hdr_end, codec::crc32c(b.data(), hdr_end));
  uint64_t entries = 0;
  try {
    const auto j = nlohmann::json::parse(b.begin() + 16, b.begin() + ptrdiff_t(hdr_end));
    entries = j.at("num_chunks").get<uint64_t>() * j.at("ladder").size();
  } catch (const std::exception&) {
    return;  // the parser will refuse the header anyway
  }
  const size_t index_at = hdr_end + 4;
  if (entries > (b.size() - index_at) / 8 || entries * 8 + 4 > b.size() - index_at) return;
  uint64_t off = index_at + entries * 8 + 4;
  for (uint64_t i = 0; i < entries; ++i) {
    const size_t e = size_t(index_at + 8 * i), n = get_u32(b, e);
    if (n > b.size() || off > b.size() - n) break;
    reseal_trailer(b.data() + off, n);
    put_u32(b, e + 4, codec::crc32c(b.data() + off, n));
    off += n;
  }
  put_u32(b, size_t(index_at + entries * 8), codec::crc32c(b.data() + index_at, size_t(entries * 8)));
}

}  // namespace kvstream::fuzz
