#include "store/record.h"

#include <cstring>
#include <string>

#include "codec/crc32c.h"

namespace kvstream::store {
namespace {

constexpr char kMagic[8] = {'K', 'V', 'S', 'R', 'E', 'C', '0', '1'};

template <typename T>
T get(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace

uint32_t crc32c(std::span<const uint8_t> data, uint32_t crc) { return codec::crc32c(data.data(), data.size(), crc); }

uint64_t Record::stored_bytes() const {
  return kRecordOverhead + 4ull * tokens.size() + payload.size();
}

std::vector<uint8_t> serialize_record(const Record& r) {
  if (r.tokens.empty()) throw std::invalid_argument("serialize_record: a record needs tokens");
  if (r.tokens.size() > kMaxRecordTokens)
    throw std::invalid_argument("serialize_record: too many tokens");
  // Written at fixed offsets into a buffer of the final size (little-endian hosts: x86-64, aarch64).
  std::vector<uint8_t> out(r.stored_bytes());
  uint8_t* p = out.data();
  auto put = [&](const void* src, size_t n) {
    if (n) std::memcpy(p, src, n);
    p += n;
  };
  const uint32_t n_tokens = static_cast<uint32_t>(r.tokens.size());
  const uint64_t payload = r.payload.size();
  put(kMagic, 8);
  put(&n_tokens, 4);
  put(&payload, 8);
  put(&r.key.hi, 8);
  put(&r.key.lo, 8);
  put(r.tokens.data(), 4ull * n_tokens);
  put(r.payload.data(), r.payload.size());
  const uint32_t crc = crc32c(std::span<const uint8_t>(out.data(), out.size() - 4));
  put(&crc, 4);
  return out;
}

RecordHeader parse_record_header(std::span<const uint8_t> b, uint64_t file_bytes) {
  if (b.size() < kRecordHeaderBytes || file_bytes < kRecordOverhead)
    throw CorruptRecord("record: truncated (" + std::to_string(file_bytes) + " bytes)");
  if (std::memcmp(b.data(), kMagic, 8) != 0) throw CorruptRecord("record: bad magic");
  RecordHeader h;
  h.n_tokens = get<uint32_t>(b.data() + 8);
  h.payload_bytes = get<uint64_t>(b.data() + 12);
  if (h.n_tokens == 0 || h.n_tokens > kMaxRecordTokens) throw CorruptRecord("record: bad token count");
  // Sizes must add up exactly; checked without overflow before anything is allocated.
  const uint64_t fixed = kRecordOverhead + 4ull * h.n_tokens;
  if (fixed > file_bytes || h.payload_bytes != file_bytes - fixed)
    throw CorruptRecord("record: declared sizes do not match the " + std::to_string(file_bytes) + " bytes present");
  h.key.hi = get<uint64_t>(b.data() + 20);
  h.key.lo = get<uint64_t>(b.data() + 28);
  return h;
}

Record parse_record(std::span<const uint8_t> b, const PrefixHasher* hasher) {
  const RecordHeader h = parse_record_header(b, b.size());
  const uint32_t n_tokens = h.n_tokens;
  const uint64_t payload = h.payload_bytes;
  const size_t body = b.size() - 4;
  if (crc32c(b.first(body)) != get<uint32_t>(b.data() + body)) throw CorruptRecord("record: checksum mismatch");
  Record r;
  r.key = h.key;
  r.tokens.resize(n_tokens);
  std::memcpy(r.tokens.data(), b.data() + 36, 4ull * n_tokens);
  const uint8_t* p = b.data() + 36 + 4ull * n_tokens;
  r.payload.assign(p, p + payload);
  if (hasher && hasher->key_of(r.tokens) != r.key) throw CorruptRecord("record: key does not match its tokens");
  return r;
}

}  // namespace kvstream::store
