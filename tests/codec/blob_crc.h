// blob_crc.h: test helper — re-seals an edited blob (recomputes its trailing CRC32C) so that a
// corruption gets past the CRC check and reaches the decoder's own validation.
#pragma once
#include <cstdint>
#include <vector>

#include "codec/crc32c.h"

namespace kvstream::testing {

inline void reseal(std::vector<uint8_t>& b) {
  const uint32_t c = codec::crc32c(b.data(), b.size() - 4);
  for (int i = 0; i < 4; ++i) b[b.size() - 4 + size_t(i)] = uint8_t(c >> (8 * i));
}

}  // namespace kvstream::testing
