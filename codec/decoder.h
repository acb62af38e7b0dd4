// decoder.h: the chunk Decoder interface — decode chunk blobs (chunk_codec.h) into a KV
// destination — with a CPU implementation (always built) and a CUDA one (codec/cuda/, target
// kvstream_codec_cuda) chosen at run time by make_decoder("cpu" | "cuda" | "auto").
//
// Usage (the receiver's decode pipeline):
//   auto dec = kvstream::codec::make_decoder("auto");           // CUDA if a device exists, else CPU
//   dec->set_profile(profile);                                  // once per context/session
//   KvBuffer buf = dec->allocate(shape, Dtype::F16, tokens);    // or describe your own tensors
//   for each received chunk blob b:  dec->submit(b, buf.dest);  // returns quickly; b may be reused
//   dec->finish();                                              // waits; throws on a corrupt blob
// submit() only enqueues work on the CUDA decoder (host staging copy, async host->device copy on
// the chunk's CUDA stream, kernels), so the next chunk's network receive overlaps the previous
// chunk's decode; the CPU decoder decodes synchronously inside submit().
//
// Contract:
// - Output equals the CPU decode: for every blob, the destination rows hold exactly
//   f32_to_f16/f32_to_bf16 (or the float itself for F32) of what decode_chunk() produces into a
//   KvCache with the destination's keys_pre_rope and rope_theta. The CUDA decoder's Quant path is
//   bit-identical to it by construction (decode_hd.h); other methods are decoded by the codec on
//   the host and uploaded.
// - Rows: the token at position p goes to row p - dest.pos_base of the destination, in the
//   caller-described layout of kv_dest.h (contiguous or paged, strides, dtype); a blob whose rows
//   fall outside [0, capacity), whose shape differs from dest.shape, or which is a Text blob (no
//   KV) is rejected with std::invalid_argument before anything of it is written.
// - Corruption (CRC, header, layout, rANS end states, escape lists) throws CorruptBlob, from
//   submit() when the host sees it, else from finish() (the CUDA decoder checks the device's
//   status words there), naming the blob's submission index. Rows of a corrupt blob may be
//   partially written; no write ever leaves its rows.
// - Quant blobs need set_profile() with the profile they were made with (CorruptBlob otherwise).
// - A decoder is used from one thread at a time. The destination memory must outlive finish().
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "codec/chunk_codec.h"
#include "codec/kv_cache.h"
#include "codec/kv_dest.h"
#include "codec/profile.h"
#include "codec/safetensors.h"  // Dtype

namespace kvstream::codec {

// Memory a decoder allocated for a destination; freed when the last copy goes away.
struct KvBuffer {
  KvDest dest;
  std::shared_ptr<void> owner;
};

// Counters since construction or reset_stats() (the bench reads them).
struct DecoderStats {
  uint64_t blobs = 0;         // blobs decoded
  uint64_t blob_bytes = 0;    // their encoded size
  uint64_t output_bytes = 0;  // bytes written to destinations
  uint64_t batches = 0;       // CUDA: device batches launched
  double h2d_ms = 0;          // CUDA: host->device copy time (CUDA events, summed over batches)
  double kernel_ms = 0;       // CUDA: decode kernels time (CUDA events, summed over batches)
  double host_ms = 0;         // host time spent inside submit()/finish()
};

class DecodeWorkspace;

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual std::string name() const = 0;         // "cpu" or "cuda"
  virtual std::string device_name() const = 0;  // e.g. "host CPU" or the GPU's name
  // Destinations this decoder writes must be in device memory (true) or host memory (false).
  virtual bool wants_device_memory() const = 0;

  // The profile Quant blobs are decoded with (copied; tables are built once per level).
  virtual void set_profile(const Profile& p) = 0;
  // Starts decoding blobs (in order) into dst. The blob bytes are copied or consumed before
  // submit returns. Throws as described above.
  virtual void submit(std::span<const std::span<const uint8_t>> blobs, const KvDest& dst) = 0;
  void submit(std::span<const uint8_t> blob, const KvDest& dst) { submit({&blob, 1}, dst); }
  // Waits for all submitted work; throws CorruptBlob for the first bad blob since the last finish().
  virtual void finish() = 0;
  // submit + finish.
  void decode(std::span<const uint8_t> blob, const KvDest& dst) {
    submit(blob, dst);
    finish();
  }

  const DecoderStats& stats() const { return stats_; }
  void reset_stats() { stats_ = {}; }

  // A destination in this decoder's memory (zero-filled), rows [pos_base, pos_base + capacity).
  virtual KvBuffer allocate(const KvShape& shape, Dtype dtype, uint32_t capacity,
                            uint32_t pos_base = 0, bool keys_pre_rope = false,
                            float rope_theta = 10000.0f) = 0;
  // Copies tensor (layer, kind 0 = K / 1 = V) rows [0, rows) of dst to host bytes, packed as
  // [rows][kv_heads][head_dim] whatever dst's layout (rows a paged dst does not store read 0), after finish().
  virtual std::vector<uint8_t> read_back(const KvDest& dst, int layer, int kind, uint32_t rows) = 0;

 protected:
  DecoderStats stats_;
};

// The CPU decoder: decode_chunk()'s engine (decode_engine.h) writing straight into dst; a submit()
// of several blobs decodes their Quant chunks in batches (the interleaved groups of two chunks run
// side by side on the SIMD paths).
class CpuDecoder final : public Decoder {
 public:
  std::string name() const override { return "cpu"; }
  std::string device_name() const override { return "host CPU"; }
  bool wants_device_memory() const override { return false; }
  CpuDecoder();
  ~CpuDecoder() override;
  void set_profile(const Profile& p) override;
  using Decoder::submit;
  void submit(std::span<const std::span<const uint8_t>> blobs, const KvDest& dst) override;
  void finish() override {}
  KvBuffer allocate(const KvShape& shape, Dtype dtype, uint32_t capacity, uint32_t pos_base = 0,
                    bool keys_pre_rope = false, float rope_theta = 10000.0f) override;
  std::vector<uint8_t> read_back(const KvDest& dst, int layer, int kind, uint32_t rows) override;

 private:
  const LevelDecodeTables* tables_for(const BlobHeader& h);
  void decode_batch(std::span<const std::span<const uint8_t>> blobs, const KvDest& dst);

  std::unique_ptr<Profile> profile_;
  std::vector<std::unique_ptr<LevelDecodeTables>> tables_;  // [level], built on first use
  std::unique_ptr<DecodeWorkspace> ws_;
  struct CallScratch;                    // submit()'s per-call vectors, kept so a warm call allocates nothing
  std::unique_ptr<CallScratch> call_;
};

// ---- choosing a decoder ----
struct CudaProbe {
  bool compiled = false;  // kvstream_codec_cuda is linked into this program
  int devices = 0;        // usable CUDA devices (0 when none or on error)
  int found = 0;          // devices present, usable or not (> devices: a GPU this build cannot use)
  std::string message;    // why there is none (e.g. the cudaGetDeviceCount error), or the device name
};
CudaProbe probe_cuda();

// kind: "cpu", "cuda" or "auto". "auto" returns the CUDA decoder when one is compiled in and a
// device exists, else the CPU decoder (and, if `note` is given, sets it to a one-line reason).
// "cuda" without CUDA or without a device throws std::runtime_error saying which. Anything else
// throws std::invalid_argument.
std::unique_ptr<Decoder> make_decoder(const std::string& kind, std::string* note = nullptr);

// Hook through which kvstream_codec_cuda registers itself (static initialisation); not for users.
struct CudaBackend {
  CudaProbe (*probe)() = nullptr;
  std::unique_ptr<Decoder> (*make)() = nullptr;
};
void register_cuda_backend(const CudaBackend& b);

}  // namespace kvstream::codec
