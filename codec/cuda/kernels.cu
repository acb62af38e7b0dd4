// The CUDA decode kernels: decode_hd.h's per-lane functions run by one half-warp per interleaved
// rANS group (lane j = state j; the refill's word offsets from a ballot and popc, the RoPE partner
// from a shuffle), and one thread per layer-0 pair of token-table blobs. All arithmetic is in
// decode_hd.h, where decode_group_hd() is the same algorithm as a host loop (what the host
// emulation and the CPU's scalar path run); this file is also compiled with --fmad=false (see
// CMakeLists.txt) as a second guard against FMA.
#include "codec/cuda/kernels.h"

namespace kvstream::codec::cuda {
namespace {

constexpr uint32_t kThreads = 128;                        // 8 groups per block
constexpr uint32_t kGroupsPerBlock = kThreads / kRansLanes;

__global__ void decode_groups_kernel(const HdChunk* __restrict__ chunks, const HdLevel* __restrict__ levels,
                                     HdOut out) {
  const HdChunk c = chunks[blockIdx.y];
  const uint32_t j = threadIdx.x % kRansLanes, half = (threadIdx.x / kRansLanes) % 2;
  const uint32_t g = blockIdx.x * kGroupsPerBlock + threadIdx.x / kRansLanes;
  if (g >= c.groups) return;  // whole half-warps exit together
  const unsigned mask = 0xFFFFu << (16 * half);
  const HdLevel L = levels[c.level];
  const uint32_t sb = L.scale_bits;
  uint32_t x = c.final_state[size_t(g) * kRansLanes + j];
  const uint8_t* p = c.data + c.group_offset[g];
  const uint8_t* const end = c.data + c.group_offset[g + 1];
  uint32_t overrun = 0, seen = 0, bad = 0;
  const uint32_t r0 = hd_group_first_round(c, g), r1 = hd_group_end_round(c, g);
  HdPos rp = hd_aligned(c) ? hd_round_pos(c, r0) : HdPos{0, 0, 0};
  for (uint32_t r = r0; r < r1; ++r) {
    const uint32_t i = r * kRansLanes + j;
    const bool active = i < c.values;
    HdPos pos{0, 0, 0};
    uint32_t e = 0, lane = 0;
    if (active) {  // step 1
      pos = hd_aligned(c) ? HdPos{rp.b, rp.t, rp.ch + j} : hd_value_pos(c, i);
      lane = pos.b * c.kv_dim + pos.ch;
      e = rans_lane_decode(x, L.slots + (size_t(lane) << sb), sb);
    }
    const bool need = active && rans_lane_needs_word(x);  // step 2
    const uint32_t words = __ballot_sync(mask, need) >> (16 * half);
    if (need) x = rans_lane_refill(x, hd_group_word(p, end, __popc(words & ((1u << j) - 1u)), &overrun));
    p += 2 * size_t(__popc(words));
    if (p > end) p = end;
    const float v = active ? hd_lane_value(c, L, lane, e, i, &seen, &bad) : 0.0f;  // step 3
    const float partner = __shfl_xor_sync(mask, v, 1);
    if (active) hd_store_value(c, out, pos, v, partner);
    if (hd_aligned(c)) hd_next_round(c, rp);
  }
  if (x != kRansL || p != end || overrun) bad |= kHdBadStream;
  if (seen) hd_status_add(c.status + 1, seen);
  if (bad) hd_status_or(c.status, bad);
}

__global__ void fill_token_layer_kernel(const HdChunk* __restrict__ chunks, HdOut out) {
  const HdChunk c = chunks[blockIdx.y];
  const uint32_t n = token_pairs_hd(c);
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    fill_token_pair_hd(c, out, i);
}

}  // namespace

cudaError_t launch_decode_groups(const HdChunk* chunks, uint32_t n_chunks, uint32_t max_groups,
                                 const HdLevel* levels, HdOut out, cudaStream_t stream) {
  if (n_chunks == 0 || max_groups == 0) return cudaSuccess;
  if (n_chunks > 65535) return cudaErrorInvalidValue;
  const dim3 grid((max_groups + kGroupsPerBlock - 1) / kGroupsPerBlock, n_chunks);
  decode_groups_kernel<<<grid, kThreads, 0, stream>>>(chunks, levels, out);
  return cudaGetLastError();
}

cudaError_t launch_fill_token_layer(const HdChunk* chunks, uint32_t n_chunks, uint32_t max_pairs, HdOut out,
                                    cudaStream_t stream) {
  if (n_chunks == 0 || max_pairs == 0) return cudaSuccess;
  if (n_chunks > 65535) return cudaErrorInvalidValue;
  uint32_t blocks = (max_pairs + kThreads - 1) / kThreads;
  if (blocks > 4096) blocks = 4096;  // grid-stride beyond
  fill_token_layer_kernel<<<dim3(blocks, n_chunks), kThreads, 0, stream>>>(chunks, out);
  return cudaGetLastError();
}

}  // namespace kvstream::codec::cuda
