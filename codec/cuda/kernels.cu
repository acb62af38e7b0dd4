// The CUDA decode kernels: thin wrappers that run decode_hd.h's shared functions, one thread per
// rANS stream (decode) and one per key pair (RoPE + conversion). All arithmetic is in decode_hd.h;
// this file is also compiled with --fmad=false (see CMakeLists.txt) as a second guard against FMA.
#include "codec/cuda/kernels.h"

namespace kvstream::codec::cuda {
namespace {

constexpr uint32_t kThreads = 128;

__global__ void decode_streams_kernel(const HdChunk* __restrict__ chunks, const HdLevel* __restrict__ levels,
                                      HdOut out) {
  const HdChunk c = chunks[blockIdx.y];
  const uint32_t st = blockIdx.x * blockDim.x + threadIdx.x;
  if (st >= c.streams) return;
  decode_stream_hd(c, levels[c.level], out, st);
}

__global__ void fill_token_layer_kernel(const HdChunk* __restrict__ chunks, HdOut out) {
  const HdChunk c = chunks[blockIdx.y];
  const uint32_t n = token_values_hd(c);
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    fill_token_value_hd(c, out, i);
}

__global__ void finish_keys_kernel(const HdChunk* __restrict__ chunks, HdOut out) {
  const HdChunk c = chunks[blockIdx.y];
  const uint32_t n = key_pairs_hd(c);
  for (uint32_t p = blockIdx.x * blockDim.x + threadIdx.x; p < n; p += gridDim.x * blockDim.x)
    finish_key_pair_hd(c, out, p);
}

// Grid of a grid-stride kernel over up to `max_items` items per chunk (grid y = chunk).
dim3 grid_stride_grid(uint32_t max_items, uint32_t n_chunks) {
  uint32_t blocks = (max_items + kThreads - 1) / kThreads;
  if (blocks > 4096) blocks = 4096;  // grid-stride beyond
  return dim3(blocks, n_chunks);
}

}  // namespace

cudaError_t launch_decode_streams(const HdChunk* chunks, uint32_t n_chunks, uint32_t max_streams,
                                  const HdLevel* levels, HdOut out, cudaStream_t stream) {
  if (n_chunks == 0 || max_streams == 0) return cudaSuccess;
  if (n_chunks > 65535) return cudaErrorInvalidValue;
  const dim3 grid((max_streams + kThreads - 1) / kThreads, n_chunks);
  decode_streams_kernel<<<grid, kThreads, 0, stream>>>(chunks, levels, out);
  return cudaGetLastError();
}

cudaError_t launch_fill_token_layer(const HdChunk* chunks, uint32_t n_chunks, uint32_t max_values, HdOut out,
                                   cudaStream_t stream) {
  if (n_chunks == 0 || max_values == 0) return cudaSuccess;
  if (n_chunks > 65535) return cudaErrorInvalidValue;
  fill_token_layer_kernel<<<grid_stride_grid(max_values, n_chunks), kThreads, 0, stream>>>(chunks, out);
  return cudaGetLastError();
}

cudaError_t launch_finish_keys(const HdChunk* chunks, uint32_t n_chunks, uint32_t max_pairs, HdOut out,
                               cudaStream_t stream) {
  if (n_chunks == 0 || max_pairs == 0) return cudaSuccess;
  if (n_chunks > 65535) return cudaErrorInvalidValue;
  finish_keys_kernel<<<grid_stride_grid(max_pairs, n_chunks), kThreads, 0, stream>>>(chunks, out);
  return cudaGetLastError();
}

}  // namespace kvstream::codec::cuda
