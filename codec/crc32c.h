// crc32c.h: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as used by iSCSI/ext4/gRPC — the
// project's one CRC32C. crc32c(data, n, crc) continues a previous crc (start with 0); it uses the
// SSE4.2 crc32 instruction when the CPU has it, else software slicing-by-8 (crc32c_portable, the
// same function without the instruction, for tests). Check value: crc32c("123456789") == 0xE3069283.
#pragma once
#include <cstddef>
#include <cstdint>

namespace kvstream::codec {

uint32_t crc32c(const uint8_t* data, size_t n, uint32_t crc = 0);
uint32_t crc32c_portable(const uint8_t* data, size_t n, uint32_t crc = 0);

}  // namespace kvstream::codec
