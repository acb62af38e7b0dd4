// The Decoder interface's CPU implementation and the run-time choice of decoder (decoder.h).
#include "codec/decoder.h"

#include <chrono>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "codec/decode_prep.h"
#include "codec/half.h"

namespace kvstream::codec {

void KvDest::validate() const {
  if (shape.n_layers <= 0 || shape.n_kv_heads <= 0 || shape.head_dim <= 0)
    throw std::invalid_argument("KvDest: empty shape");
  if (k.size() != size_t(shape.n_layers) || v.size() != size_t(shape.n_layers))
    throw std::invalid_argument("KvDest: need one K and one V tensor per layer");
  for (int l = 0; l < shape.n_layers; ++l)
    if (!k[size_t(l)] || !v[size_t(l)]) throw std::invalid_argument("KvDest: null tensor pointer");
}

KvDest KvDest::offset_rows(uint32_t rows) const {
  if (rows > capacity) throw std::invalid_argument("KvDest::offset_rows: beyond capacity");
  KvDest d = *this;
  const size_t bytes = size_t(rows) * size_t(shape.kv_dim()) * dest_elem_bytes(dtype);
  for (auto& p : d.k) p = static_cast<uint8_t*>(p) + bytes;
  for (auto& p : d.v) p = static_cast<uint8_t*>(p) + bytes;
  d.capacity = capacity - rows;
  return d;
}

// ---- CPU decoder ----

void CpuDecoder::set_profile(const Profile& p) {
  p.validate();
  profile_ = std::make_unique<Profile>(p);
  tables_.clear();
  tables_.resize(p.levels.size());
}

void CpuDecoder::submit(std::span<const std::span<const uint8_t>> blobs, const KvDest& dst) {
  dst.validate();
  if (dst.on_device) throw std::invalid_argument("cpu decoder: destination is device memory");
  const size_t d = size_t(dst.shape.kv_dim());
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < blobs.size(); ++i) {
    try {
      const BlobHeader h = parse_blob_header(blobs[i]);
      const uint32_t row0 = check_dest_fits(h, dst);
      const LevelDecodeTables* tables = nullptr;
      if (h.method == Method::Quant) {
        if (!profile_) throw std::invalid_argument("cpu decoder: quant blob but no profile set (set_profile)");
        if (h.level < tables_.size() && profile_->shape == h.shape) {
          if (!tables_[h.level])
            tables_[h.level] = std::make_unique<LevelDecodeTables>(build_decode_tables(*profile_, h.level));
          tables = tables_[h.level].get();
        }
      }
      if (!(scratch_.shape == dst.shape) || scratch_.keys_pre_rope != dst.keys_pre_rope ||
          scratch_.rope_theta != dst.rope_theta)
        scratch_ = KvCache(dst.shape, "", dst.rope_theta, dst.keys_pre_rope);
      scratch_.resize(h.tokens);
      decode_chunk(blobs[i], profile_.get(), scratch_, tables, h.first_pos);
      const size_t n = size_t(h.tokens) * d, off = size_t(row0) * d;
      for (int l = 0; l < dst.shape.n_layers; ++l)
        for (int kind = 0; kind < 2; ++kind) {
          const float* src = kind == 0 ? scratch_.k[size_t(l)].data() : scratch_.v[size_t(l)].data();
          void* base = kind == 0 ? dst.k[size_t(l)] : dst.v[size_t(l)];
          switch (dst.dtype) {
            case Dtype::F32: std::memcpy(static_cast<float*>(base) + off, src, n * sizeof(float)); break;
            case Dtype::F16: f32_to_f16(src, static_cast<uint16_t*>(base) + off, n); break;
            case Dtype::BF16: f32_to_bf16(src, static_cast<uint16_t*>(base) + off, n); break;
          }
        }
      stats_.blobs += 1;
      stats_.blob_bytes += blobs[i].size();
      stats_.output_bytes += 2 * size_t(dst.shape.n_layers) * n * dest_elem_bytes(dst.dtype);
    } catch (const CorruptBlob& e) {
      throw CorruptBlob("blob " + std::to_string(i) + ": " + e.what());
    }
  }
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
  if (layer < 0 || layer >= dst.shape.n_layers || kind < 0 || kind > 1 || rows > dst.capacity)
    throw std::invalid_argument("read_back: bad layer, kind or rows");
  const size_t n = size_t(rows) * size_t(dst.shape.kv_dim()) * dest_elem_bytes(dst.dtype);
  const auto* p = static_cast<const uint8_t*>(kind == 0 ? dst.k[size_t(layer)] : dst.v[size_t(layer)]);
  return std::vector<uint8_t>(p, p + n);
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
