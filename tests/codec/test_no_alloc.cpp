// Warm decoding allocates nothing: after a first call (tables built, workspace and per-call
// vectors sized), CpuDecoder::submit and decode_chunk(..., KvDest, workspace) make no heap
// allocation for chunks like those already seen. Counted by replacing the global operator new in
// this test program (it only counts; every allocation still goes to malloc).
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <new>

#include "codec/chunk_codec.h"
#include "codec/decode_engine.h"
#include "codec/decoder.h"
#include "codec_fixture.h"

namespace {
std::atomic<size_t> g_allocations{0};
}  // namespace

// GCC 12 flags free() of what it inlines as operator new's result (-Wmismatched-new-delete), not
// knowing that this operator new is malloc.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
namespace {
void* counted_malloc(size_t n) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
void* counted_or_throw(size_t n) {
  if (void* p = counted_malloc(n)) return p;
  throw std::bad_alloc();
}
}  // namespace

// Every unaligned form, so that each allocation and its release pair up as malloc/free (ASan
// checks that); the aligned forms stay the runtime's and pair among themselves.
void* operator new(size_t n) { return counted_or_throw(n); }
void* operator new[](size_t n) { return counted_or_throw(n); }
void* operator new(size_t n, const std::nothrow_t&) noexcept { return counted_malloc(n); }
void* operator new[](size_t n, const std::nothrow_t&) noexcept { return counted_malloc(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
#pragma GCC diagnostic pop

using namespace kvstream::codec;
using kvstream::testing::real_kv;
using kvstream::testing::test_profile;

TEST_CASE("warm decoding makes no heap allocation", "[codec][decoder]") {
  const auto& kv = real_kv();
  const Profile& p = test_profile();
  EncodeOptions eo;
  eo.profile_hash = p.hash();
  std::vector<std::vector<uint8_t>> blobs;
  for (size_t b = 0; b < kv.num_tokens(); b += 32)
    blobs.push_back(encode_chunk(kv, b, std::min(kv.num_tokens(), b + 32), uint32_t(b), Method::Quant, &p, 1, eo));
  const std::vector<std::span<const uint8_t>> spans(blobs.begin(), blobs.end());
  CpuDecoder dec;
  dec.set_profile(p);
  const KvBuffer out = dec.allocate(kv.shape, kvstream::Dtype::F16, uint32_t(kv.num_tokens()), 0, false, p.rope_theta);
  dec.submit(spans, out.dest);  // warm: tables, workspace, per-call vectors
  const LevelDecodeTables tables = build_decode_tables(p, 1);
  DecodeWorkspace ws;
  for (const auto& b : blobs) decode_chunk(b, &p, out.dest, &tables, &ws);

  const size_t before = g_allocations.load();
  for (int r = 0; r < 5; ++r) {
    dec.submit(spans, out.dest);
    for (const auto& s : spans) dec.submit(std::span(&s, 1), out.dest);
    for (const auto& b : blobs) decode_chunk(b, &p, out.dest, &tables, &ws);
  }
  const size_t made = g_allocations.load() - before;
  CHECK(made == 0);
}
