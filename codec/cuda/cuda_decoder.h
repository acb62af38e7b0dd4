// cuda_decoder.h: the CUDA implementation of codec::Decoder (decoder.h). Most code should use
// make_decoder("cuda" | "auto") instead; linking kvstream_codec_cuda registers this backend.
//
// Pipeline: `in_flight` slots, each with a pinned host staging buffer, a device staging buffer and
// its own CUDA stream. submit() takes the next slot (waiting only if that slot's previous batch is
// still running), flattens the batch's Quant blobs (stream directory, escape list, RoPE cos/sin
// rows, blob bytes) into the pinned buffer, then enqueues on the slot's stream: one async
// host->device copy, the stream-decode kernel, the key-rotation kernel and a 8-byte status copy
// back. So while chunk i decodes on slot i's stream, chunk i+1's copy runs on slot i+1's stream.
// Non-Quant blobs (fp16/q8/q4/zstd baselines) are decoded by the CPU decoder and copied
// synchronously (not pipelined). Errors found by the device are thrown at the slot's next reuse or
// at finish().
#pragma once
#include <memory>

#include "codec/decoder.h"

namespace kvstream::codec::cuda {

struct CudaDecoderOptions {
  int in_flight = 3;  // staging slots / CUDA streams
  int device = 0;
};

// Throws std::runtime_error when no usable device exists.
std::unique_ptr<Decoder> make_cuda_decoder(const CudaDecoderOptions& opt = {});
CudaProbe probe();

}  // namespace kvstream::codec::cuda
