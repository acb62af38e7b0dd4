// kernels.h: launchers of the CUDA decode kernels (kernels.cu). Plain C++ so that the host-side
// decoder (cuda_decoder.cpp) is compiled by the C++ compiler and only the kernels go through nvcc.
//
// Contract: every pointer is device memory. `chunks` holds n_chunks HdChunk (decode_hd.h) whose
// pointers are device pointers; `levels` holds the HdLevel array chunks[i].level indexes; out.base
// points at a device array of 2 * n_layers tensor pointers. decode_groups runs one half-warp (16
// threads, one per rANS state) per interleaved group of every chunk (grid y = chunk);
// fill_token_layer one thread per layer-0 value pair of token-table blobs (no-op for others).
// Both are asynchronous on `stream`; launch errors are returned (cudaGetLastError), not thrown.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "codec/decode_hd.h"

namespace kvstream::codec::cuda {

cudaError_t launch_decode_groups(const HdChunk* chunks, uint32_t n_chunks, uint32_t max_groups,
                                 const HdLevel* levels, HdOut out, cudaStream_t stream);
cudaError_t launch_fill_token_layer(const HdChunk* chunks, uint32_t n_chunks, uint32_t max_pairs, HdOut out,
                                    cudaStream_t stream);

}  // namespace kvstream::codec::cuda
