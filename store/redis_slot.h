// Redis Cluster key -> hash slot (the cluster specification's key distribution model).
//
// slot(key) = CRC16(k) mod 16384, where CRC16 is CRC-16/XMODEM (polynomial 0x1021, init 0, no
// reflection, no final xor; crc16("123456789") = 0x31C3) and k is the key's hash tag when it has
// one: the bytes between the first '{' and the first '}' after it, if that span is non-empty;
// otherwise the whole key. Keys sharing a tag therefore share a slot (and a node), which is how
// the Redis tier co-locates or spreads one context's values (store/redis_tier.h).
#pragma once
#include <cstdint>
#include <string_view>

namespace kvstream::store::redis {

inline constexpr uint16_t kSlots = 16384;

uint16_t crc16(std::string_view data);
// The part of `key` that is hashed (its hash tag, or the key itself).
std::string_view hash_tag(std::string_view key);
uint16_t key_slot(std::string_view key);

}  // namespace kvstream::store::redis
