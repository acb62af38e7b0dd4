// The Decoder interface's CPU implementation and the run-time choice of decoder (decoder.h).
#include "codec/decoder.h"

#include <chrono>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "codec/decode_engine.h"

namespace kvstream::codec {

// ---- CPU decoder ----

struct CpuDecoder::CallScratch {
  std::vector<BlobHeader> hs;          // [blob of the call]
  std::vector<uint32_t> rows;          // [blob of the call] first destination row
  std::vector<size_t> batch;           // blobs of the batch being gathered
  std::vector<QuantChunkInput> in;     // the batch's kernel inputs
};

CpuDecoder::CpuDecoder() : ws_(std::make_unique<DecodeWorkspace>()), call_(std::make_unique<CallScratch>()) {}
CpuDecoder::~CpuDecoder() = default;

void CpuDecoder::set_profile(const Profile& p) {
  p.validate();
  profile_ = std::make_unique<Profile>(p);
  tables_.clear();
  tables_.resize(p.levels.size());
}

const LevelDecodeTables* CpuDecoder::tables_for(const BlobHeader& h) {
  if (h.method != Method::Quant) return nullptr;
  if (!profile_) throw std::invalid_argument("cpu decoder: quant blob but no profile set (set_profile)");
  if (h.level >= tables_.size() || !(profile_->shape == h.shape)) return nullptr;  // decode_chunk rejects it
  if (!tables_[h.level]) tables_[h.level] = std::make_unique<LevelDecodeTables>(build_decode_tables(*profile_, h.level));
  return tables_[h.level].get();
}

// Format-3 Quant blobs idx of one submit, decoded together (decode_quant_chunks).
void CpuDecoder::decode_batch(std::span<const std::span<const uint8_t>> blobs, const KvDest& dst) {
  const std::vector<size_t>& idx = call_->batch;
  const std::vector<BlobHeader>& hs = call_->hs;
  const std::vector<uint32_t>& rows = call_->rows;
  std::vector<QuantChunkInput>& in = call_->in;
  in.clear();
  for (size_t i : idx) {
    const BlobHeader& h = hs[i];
    const LevelDecodeTables* t = tables_for(h);
    try {
      if (!t) throw CorruptBlob(h.level >= profile_->levels.size() ? "chunk blob: level not in profile"
                                                                   : "chunk blob: shape differs from profile");
      if (h.profile_hash != t->profile_hash) throw CorruptBlob("chunk blob: made with another profile (hash mismatch)");
    } catch (const CorruptBlob& e) {
      throw CorruptBlob("blob " + std::to_string(i) + ": " + e.what());
    }
    in.push_back(QuantChunkInput{blobs[i], &h, profile_.get(), t, &dst, rows[i], nullptr});
  }
  size_t failed = 0;
  try {
    decode_quant_chunks(in, *ws_, &failed);
  } catch (const CorruptBlob& e) {
    throw CorruptBlob("blob " + std::to_string(idx[failed]) + ": " + e.what());
  }
}

void CpuDecoder::submit(std::span<const std::span<const uint8_t>> blobs, const KvDest& dst) {
  dst.validate();
  if (dst.on_device) throw std::invalid_argument("cpu decoder: destination is device memory");
  const auto t0 = std::chrono::steady_clock::now();
  constexpr size_t kBatch = 8;  // chunks decoded together (bounded scratch)
  std::vector<BlobHeader>& hs = call_->hs;
  std::vector<uint32_t>& rows = call_->rows;
  std::vector<size_t>& batch = call_->batch;
  hs.resize(blobs.size());
  rows.resize(blobs.size());
  batch.clear();
  auto flush = [&] {
    if (!batch.empty()) decode_batch(blobs, dst);
    batch.clear();
  };
  for (size_t i = 0; i < blobs.size(); ++i) {
    try {
      hs[i] = parse_blob_header(blobs[i]);
    } catch (const CorruptBlob& e) {
      flush();
      throw CorruptBlob("blob " + std::to_string(i) + ": " + e.what());
    }
    try {
      rows[i] = check_dest_fits(hs[i], dst);
    } catch (...) {
      flush();  // the blobs before it are decoded, as if one by one
      throw;
    }
    if (hs[i].method == Method::Quant && hs[i].version >= 3 && profile_) {
      batch.push_back(i);
      if (batch.size() == kBatch) flush();
    } else {
      flush();
      try {
        decode_chunk(blobs[i], profile_.get(), dst, tables_for(hs[i]), ws_.get());
      } catch (const CorruptBlob& e) {
        throw CorruptBlob("blob " + std::to_string(i) + ": " + e.what());
      }
    }
    stats_.blobs += 1;
    stats_.blob_bytes += blobs[i].size();
    stats_.output_bytes += 2 * size_t(dst.shape.n_layers) * hs[i].tokens * size_t(dst.shape.kv_dim()) * dest_elem_bytes(dst.dtype);
  }
  flush();
  stats_.host_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

KvBuffer CpuDecoder::allocate(const KvShape& shape, Dtype dtype, uint32_t capacity, uint32_t pos_base,
                              bool keys_pre_rope, float rope_theta) {
  if (shape.n_layers <= 0 || shape.kv_dim() <= 0 || capacity == 0)
    throw std::invalid_argument("allocate: empty shape or capacity");
  const size_t tensor = size_t(capacity) * size_t(shape.kv_dim()) * dest_elem_bytes(dtype);
  if (tensor / capacity / dest_elem_bytes(dtype) != size_t(shape.kv_dim()) ||
      tensor > std::numeric_limits<size_t>::max() / (2 * size_t(shape.n_layers)))
    throw std::invalid_argument("allocate: size overflow");
  std::shared_ptr<uint8_t[]> mem(new uint8_t[tensor * 2 * size_t(shape.n_layers)]());
  KvBuffer b;
  b.dest.shape = shape;
  b.dest.dtype = dtype;
  b.dest.on_device = false;
  b.dest.capacity = capacity;
  b.dest.pos_base = pos_base;
  b.dest.keys_pre_rope = keys_pre_rope;
  b.dest.rope_theta = rope_theta;
  for (int l = 0; l < shape.n_layers; ++l) {
    b.dest.k.push_back(mem.get() + (2 * size_t(l)) * tensor);
    b.dest.v.push_back(mem.get() + (2 * size_t(l) + 1) * tensor);
  }
  b.owner = std::shared_ptr<void>(mem, mem.get());
  return b;
}

std::vector<uint8_t> CpuDecoder::read_back(const KvDest& dst, int layer, int kind, uint32_t rows) {
  dst.validate();
  if (dst.on_device) throw std::invalid_argument("cpu decoder: read_back of device memory");
  return dst.read_rows(layer, kind, rows);
}

// ---- choosing a decoder ----

namespace {
CudaBackend& backend() {
  static CudaBackend b;
  return b;
}
}  // namespace

void register_cuda_backend(const CudaBackend& b) { backend() = b; }

CudaProbe probe_cuda() {
  if (!backend().probe) {
    CudaProbe p;
    p.message = "this kvstream was built without the CUDA decoder (no nvcc at configure time, or KVSTREAM_CUDA=OFF)";
    return p;
  }
  return backend().probe();
}

std::unique_ptr<Decoder> make_decoder(const std::string& kind, std::string* note) {
  if (kind == "cpu") {
    if (note) *note = "decoding on the CPU (--decode cpu)";
    return std::make_unique<CpuDecoder>();
  }
  if (kind != "cuda" && kind != "auto")
    throw std::invalid_argument("unknown decoder '" + kind + "' (expected cpu, cuda or auto)");
  const CudaProbe p = probe_cuda();
  if (p.compiled && p.devices > 0 && backend().make) {
    if (note) *note = "decoding on the GPU: " + p.message;
    return backend().make();
  }
  const std::string why = !p.compiled ? p.message : "no CUDA device available (" + p.message + ")";
  if (kind == "cuda") throw std::runtime_error("CUDA decoder requested but " + why);
  if (note) *note = why + "; falling back to the CPU decoder";
  return std::make_unique<CpuDecoder>();
}

}  // namespace kvstream::codec
