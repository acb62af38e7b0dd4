// crc32c.h: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as used by iSCSI/ext4/gRPC.
// Software slicing-by-8; crc32c(data, n, crc) continues a previous crc (start with 0).
// Check value: crc32c("123456789") == 0xE3069283.
#pragma once
#include <cstddef>
#include <cstdint>

namespace kvstream::codec {

uint32_t crc32c(const uint8_t* data, size_t n, uint32_t crc = 0);

}  // namespace kvstream::codec
