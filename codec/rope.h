// Rotary position embedding (RoPE) exactly as llama2.c applies it: consecutive pairs (2i, 2i+1)
// within each head rotate by angle pos * theta^(-2i/head_dim), computed in float as run.c does,
// so keys match the reference implementation bit for bit.
//
// Contract: `row` points at one token's n_heads * head_dim values; head_dim is even.
// rope_rotate(..., inverse=true) undoes the rotation (up to float rounding), turning post-RoPE
// keys into pre-RoPE keys. The KvCache helpers convert a whole cache whose token t sits at
// position start_pos + t and flip keys_pre_rope accordingly.
#pragma once
#include <cstdint>

#include "codec/kv_cache.h"

namespace kvstream {

void rope_rotate(float* row, int n_heads, int head_dim, int pos, float theta, bool inverse = false);

// The angles of position pos: out[2j] = cos, out[2j + 1] = sin (negated when inverse) of the
// rotation of pair (2j, 2j + 1), j < head_dim / 2, with run.c's expressions. Every rotation in the
// project (here, the CPU decoders, the CUDA decoder's host-computed tables) takes its angles from
// this one function.
void rope_angles(float theta, int head_dim, int pos, bool inverse, float* out);
// rope_angles of positions pos0 .. pos0 + n - 1: out[(r * head_dim/2 + j) * 2 + {0, 1}].
void rope_cs_rows(float theta, int head_dim, uint32_t pos0, uint32_t n, bool inverse, float* out);

// Rotates rows r = 0..n_rows-1 (row r at position pos0 + r, each n_heads * head_dim floats,
// consecutive) of every array in `bases` (e.g. one per layer): the same values as rope_rotate()
// row by row, with each angle's cos/sin computed once per position instead of per row and head.
void rope_rotate_rows(float* const* bases, int n_bases, size_t n_rows, int n_heads, int head_dim,
                      int pos0, float theta, bool inverse = false);

// Pre-RoPE keys -> post-RoPE keys at positions start_pos, start_pos+1, ... (no-op if already post).
void rope_apply_to_keys(KvCache& kv, int start_pos = 0);
// Post-RoPE keys (at positions start_pos...) -> pre-RoPE keys (no-op if already pre).
void rope_remove_from_keys(KvCache& kv, int start_pos = 0);

}  // namespace kvstream
