// api/rows.h — moving token rows between an internal KvCache (fp32, [token][head][dim]) and a
// caller's KvLayout (any dtype, strides, paged or contiguous), in host memory.
//
// Contract: the layout was validated (KvLayout::validate) and has the cache's shape. to_layout()
// writes tokens [begin, begin + n), held by rows src_row.. of `kv`, to their layout rows,
// converting fp32 to the layout's dtype (round to nearest even), keys rotated or pre-RoPE as the
// layout says (kv's keys are post-RoPE); tokens the layout does not take (beyond max_tokens(),
// negative slots) are skipped. from_layout() reads `n` tokens into a post-RoPE cache (every token
// must have a slot). Host memory only (kInvalidArgument for a device layout). Both address the
// layout through codec's KvDest (codec/kv_dest.h), and to_layout() writes through the decoders'
// output stage (codec::store_float_rows: the same rounding and RoPE as a decode into a KvDest).
#pragma once
#include <cstdint>

#include "codec/kv_cache.h"
#include "kvstream/layout.h"

namespace kvstream::api {

void to_layout(const KvCache& kv, uint32_t src_row, uint32_t begin, uint32_t n, const KvLayout& layout);
// A cache of n tokens (ids left 0) read from the layout's tokens 0..n-1; keys post-RoPE.
KvCache from_layout(const KvLayout& layout, uint64_t n, float rope_theta);

}  // namespace kvstream::api
