// decode_engine_simd.h (internal): the plain-data interface between the CPU decode engine
// (decode_engine.cpp) and its instruction-set-specific kernels (decode_engine_avx2.cpp,
// decode_engine_avx512.cpp). Only structs and function declarations live here: the kernel files
// put every helper in an anonymous namespace and compile their functions with target attributes,
// so no inline function is ever shared between code built for different instruction sets.
//
// A kernel runs only on chunks the engine checked are eligible: kv_dim a multiple of kRansLanes
// (every round is 16 consecutive channels of one token) and head_dim a multiple of 8 (every
// 8-channel half lies inside one head; its cos/sin are 4 consecutive rope_cs pairs).
#pragma once
#include <cstddef>
#include <cstdint>

namespace kvstream::codec::simd {

inline constexpr uint32_t kLanes = 16;       // rANS states per group (= kRansLanes)
inline constexpr uint32_t kL = 1u << 16;     // rANS L (= kRansL)
enum : uint32_t { kF32 = 0, kF16 = 1, kBF16 = 2 };         // OutJob::dtype (decode_hd.h's kHd*)
enum : uint32_t { kBadStream = 1, kBadEscape = 2 };        // GroupJob::bad (decode_hd.h's kHdBad*)

// The output side of a chunk (shared by its groups and its token layer).
struct OutJob {
  uint8_t* const* base = nullptr;     // [2 * n_layers] tensor bases (block = layer * 2 + kind)
  const int64_t* row_off = nullptr;   // [tokens] byte offset of each token's row, -1 = not stored
  const float* rope_cs = nullptr;     // [tokens][head_dim / 2][cos, sin]; null = keys not rotated
  size_t head_stride = 0;             // bytes
  uint32_t dtype = 0;                 // kHdF32 / kHdF16 / kHdBF16
  uint32_t tokens = 0, kv_dim = 0, head_dim = 0;
};

// One interleaved group of a format-3 Quant chunk.
struct GroupJob {
  const OutJob* out = nullptr;
  const uint8_t* words = nullptr;     // the group's words [words, words_end)
  const uint8_t* words_end = nullptr;
  const uint32_t* states = nullptr;   // [kRansLanes] final states
  uint32_t rounds = 0;                // rounds in the group
  uint32_t first_round = 0;           // chunk round index of its first round (escape indices)
  uint32_t b = 0, t = 0, c0 = 0;      // position of its first round: block, token, channel group start
  const uint32_t* slots = nullptr;    // level slot tables; lane table = slots + (lane << scale_bits)
  uint32_t scale_bits = 0;
  const float* mean = nullptr;        // [lane] level arrays (LevelDecodeTables)
  const float* step = nullptr;
  const int32_t* q_min = nullptr;
  const uint16_t* escape = nullptr;
  const uint32_t* esc_index = nullptr;  // the chunk's escape list, and this group's part of it
  const int32_t* esc_q = nullptr;
  uint32_t esc_begin = 0, esc_end = 0;
  uint32_t chunk = 0;                 // the caller's index of its chunk
  // results
  uint32_t bad = 0;                   // kHdBadStream / kHdBadEscape bits
  uint32_t seen = 0;                  // escape symbols decoded
};

// Layer 0 of a token-table chunk: each token's K (rotated when out->rope_cs) and V rows from the
// profile's table.
struct TokenJob {
  const OutJob* out = nullptr;
  const int32_t* tokens = nullptr;    // [out->tokens] ids (< the table's vocabulary)
  const float* token_kv = nullptr;    // profile.h layout
};

// Decode every job (four at a time, side by side, so that four times the rANS states are in flight).
void decode_groups_avx2(GroupJob* jobs, size_t n);
void decode_groups_avx512(GroupJob* jobs, size_t n);
void fill_tokens_avx2(const TokenJob& job);
void fill_tokens_avx512(const TokenJob& job);
// The first n / 16 * 16 floats -> elements of dtype at out (whole vectors of 16); returns that
// count, and the caller converts the rest.
size_t convert_avx2(const float* in, size_t n, uint32_t dtype, uint8_t* out);
size_t convert_avx512(const float* in, size_t n, uint32_t dtype, uint8_t* out);

}  // namespace kvstream::codec::simd
