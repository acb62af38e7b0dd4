// CUDA decoder host side: staging, streams, pipelining, table upload, error checks (cuda_decoder.h).
// Compiled by the C++ compiler against the CUDA runtime API; kernels live in kernels.cu.
#include "codec/cuda/cuda_decoder.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "codec/cuda/kernels.h"
#include "codec/decode_prep.h"

namespace kvstream::codec::cuda {
namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
}
#define KV_CUDA(expr) check((expr), #expr)

constexpr size_t kAlign = 16;
size_t align_up(size_t n) { return (n + kAlign - 1) & ~(kAlign - 1); }
constexpr uint32_t kMaxBatchChunks = 4096;            // chunks per launch (grid y <= 65535)
constexpr size_t kMaxBatchBytes = size_t(256) << 20;  // staging bytes per launch

struct PinnedBuf {
  uint8_t* p = nullptr;
  size_t cap = 0;
  void reserve(size_t n) {
    if (n <= cap) return;
    if (p) cudaFreeHost(p), p = nullptr, cap = 0;
    KV_CUDA(cudaHostAlloc(reinterpret_cast<void**>(&p), std::max<size_t>(n, 1 << 16), cudaHostAllocDefault));
    cap = std::max<size_t>(n, 1 << 16);
  }
  ~PinnedBuf() { if (p) cudaFreeHost(p); }
};

struct DeviceBuf {
  uint8_t* p = nullptr;
  size_t cap = 0;
  void reserve(size_t n) {
    if (n <= cap) return;
    if (p) cudaFree(p), p = nullptr, cap = 0;
    KV_CUDA(cudaMalloc(reinterpret_cast<void**>(&p), std::max<size_t>(n, 1 << 16)));
    cap = std::max<size_t>(n, 1 << 16);
  }
  ~DeviceBuf() { if (p) cudaFree(p); }
};

struct Slot {
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr, h2d_done = nullptr, done = nullptr;
  PinnedBuf host, status_host;
  DeviceBuf dev;
  bool busy = false;
  std::vector<uint32_t> escapes;   // [chunk] listed escapes
  std::vector<size_t> blob_index;  // [chunk] submission index
  size_t status_offset = 0;        // status words' offset in dev
};

struct DevLevel {  // a level's LevelDecodeTables arrays on the device
  DeviceBuf slots, mean, step, q_min, escape;
};

class CudaDecoder final : public Decoder {
 public:
  explicit CudaDecoder(const CudaDecoderOptions& opt) {
    KV_CUDA(cudaSetDevice(opt.device));
    cudaDeviceProp prop{};
    KV_CUDA(cudaGetDeviceProperties(&prop, opt.device));
    device_name_ = std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ")";
    slots_.resize(size_t(std::max(1, opt.in_flight)));
    for (Slot& s : slots_) {
      KV_CUDA(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
      KV_CUDA(cudaEventCreate(&s.start));
      KV_CUDA(cudaEventCreate(&s.h2d_done));
      KV_CUDA(cudaEventCreate(&s.done));
    }
  }
  ~CudaDecoder() override {
    for (Slot& s : slots_) {
      if (s.stream) cudaStreamSynchronize(s.stream);
      if (s.start) cudaEventDestroy(s.start);
      if (s.h2d_done) cudaEventDestroy(s.h2d_done);
      if (s.done) cudaEventDestroy(s.done);
      if (s.stream) cudaStreamDestroy(s.stream);
    }
  }

  std::string name() const override { return "cuda"; }
  using Decoder::submit;
  std::string device_name() const override { return device_name_; }
  bool wants_device_memory() const override { return true; }

  void set_profile(const Profile& p) override {
    p.validate();
    finish();
    profile_ = std::make_unique<Profile>(p);
    profile_hash_ = p.hash();
    cpu_.set_profile(p);
    KV_CUDA(cudaDeviceSynchronize());
    dev_levels_.clear();
    dev_levels_.resize(p.levels.size());
    host_levels_.assign(p.levels.size(), HdLevel{});
    levels_arr_.reserve(std::max<size_t>(1, p.levels.size()) * sizeof(HdLevel));
    if (p.has_token_table()) {  // layer 0 of token-table blobs is read from the device copy
      token_kv_.reserve(p.token_kv.size() * sizeof(float));
      KV_CUDA(cudaMemcpy(token_kv_.p, p.token_kv.data(), p.token_kv.size() * sizeof(float), cudaMemcpyHostToDevice));
    }
  }

  void submit(std::span<const std::span<const uint8_t>> blobs, const KvDest& dst) override {
    const auto t0 = std::chrono::steady_clock::now();
    dst.validate();
    if (!dst.on_device) throw std::invalid_argument("cuda decoder: destination must be device memory (KvDest::on_device)");
    check_device_pointer(dst.k[0]);
    std::vector<BlobHeader> hs(blobs.size());
    for (size_t i = 0; i < blobs.size(); ++i) {
      try {
        hs[i] = parse_blob_header(blobs[i]);
      } catch (const CorruptBlob& e) {
        throw CorruptBlob("blob " + std::to_string(submitted_ + i) + ": " + e.what());
      }
      check_dest_fits(hs[i], dst);
    }
    std::vector<size_t> batch;
    size_t batch_bytes = 0;
    for (size_t i = 0; i < blobs.size(); ++i) {
      if (hs[i].method != Method::Quant || hs[i].version < 3) {  // baselines, format-2 Quant
        host_path(blobs[i], dst, submitted_ + i);
        continue;
      }
      const size_t est = blobs[i].size() * 2 + 4096;
      if (!batch.empty() && (batch.size() >= kMaxBatchChunks || batch_bytes + est > kMaxBatchBytes))
        enqueue(blobs, hs, batch, dst), batch.clear(), batch_bytes = 0;
      batch.push_back(i);
      batch_bytes += est;
    }
    if (!batch.empty()) enqueue(blobs, hs, batch, dst);
    submitted_ += blobs.size();
    stats_.host_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }

  void finish() override {
    const auto t0 = std::chrono::steady_clock::now();
    std::string first_error;
    bool corrupt = false;
    for (size_t k = 0; k < slots_.size(); ++k) {  // oldest first
      Slot& s = slots_[(next_ + k) % slots_.size()];
      try {
        wait_slot(s);
      } catch (const CorruptBlob& e) {
        if (first_error.empty()) first_error = e.what(), corrupt = true;
      } catch (const std::exception& e) {
        if (first_error.empty()) first_error = e.what();
      }
    }
    submitted_ = 0;
    stats_.host_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (!first_error.empty()) {
      if (corrupt) throw CorruptBlob(first_error);
      throw std::runtime_error(first_error);
    }
  }

  KvBuffer allocate(const KvShape& shape, Dtype dtype, uint32_t capacity, uint32_t pos_base,
                    bool keys_pre_rope, float rope_theta) override {
    if (shape.n_layers <= 0 || shape.kv_dim() <= 0 || capacity == 0)
      throw std::invalid_argument("allocate: empty shape or capacity");
    const size_t tensor = size_t(capacity) * size_t(shape.kv_dim()) * dest_elem_bytes(dtype);
    const size_t total = tensor * 2 * size_t(shape.n_layers);
    void* mem = nullptr;
    KV_CUDA(cudaMalloc(&mem, total));
    std::shared_ptr<void> owner(mem, [](void* p) { cudaFree(p); });
    KV_CUDA(cudaMemset(mem, 0, total));
    KvBuffer b;
    b.dest.shape = shape;
    b.dest.dtype = dtype;
    b.dest.on_device = true;
    b.dest.capacity = capacity;
    b.dest.pos_base = pos_base;
    b.dest.keys_pre_rope = keys_pre_rope;
    b.dest.rope_theta = rope_theta;
    for (int l = 0; l < shape.n_layers; ++l) {
      b.dest.k.push_back(static_cast<uint8_t*>(mem) + 2 * size_t(l) * tensor);
      b.dest.v.push_back(static_cast<uint8_t*>(mem) + (2 * size_t(l) + 1) * tensor);
    }
    b.owner = owner;
    return b;
  }

  std::vector<uint8_t> read_back(const KvDest& dst, int layer, int kind, uint32_t rows) override {
    dst.validate();
    if (!dst.on_device) throw std::invalid_argument("cuda decoder: read_back of host memory");
    if (layer < 0 || layer >= dst.shape.n_layers || kind < 0 || kind > 1 || rows > dst.capacity)
      throw std::invalid_argument("read_back: bad layer, kind or rows");
    const size_t head = size_t(dst.shape.head_dim) * dest_elem_bytes(dst.dtype), row = head * size_t(dst.shape.n_kv_heads);
    std::vector<uint8_t> out(size_t(rows) * row);
    const auto* base = static_cast<const uint8_t*>(kind == 0 ? dst.k[size_t(layer)] : dst.v[size_t(layer)]);
    copy_rows(out.data(), base, dst, 0, rows, cudaMemcpyDeviceToHost);
    return out;
  }

 private:
  static void check_device_pointer(const void* p) {
    cudaPointerAttributes a{};
    KV_CUDA(cudaPointerGetAttributes(&a, p));
    if (a.type != cudaMemoryTypeDevice && a.type != cudaMemoryTypeManaged)
      throw std::invalid_argument("cuda decoder: destination pointers are not CUDA device memory");
  }

  // Packed [rows][kv_dim] host bytes <-> rows [row0, row0 + rows) of a device tensor in dst's layout
  // (one copy when the rows are contiguous, else one per row and head; rows not stored are skipped).
  static void copy_rows(uint8_t* host, const uint8_t* dev_base, const KvDest& dst, uint32_t row0, uint32_t rows,
                        cudaMemcpyKind kind) {
    const size_t head = size_t(dst.shape.head_dim) * dest_elem_bytes(dst.dtype), row = head * size_t(dst.shape.n_kv_heads);
    auto xfer = [&](size_t host_off, int64_t dev_off, size_t n) {
      uint8_t* d = const_cast<uint8_t*>(dev_base) + dev_off;
      if (kind == cudaMemcpyHostToDevice) KV_CUDA(cudaMemcpy(d, host + host_off, n, kind));
      else KV_CUDA(cudaMemcpy(host + host_off, d, n, kind));
    };
    if (!dst.paged() && dst.heads_packed() && dst.token_stride_bytes() == row)
      return xfer(0, dst.row_offset(row0), size_t(rows) * row);
    for (uint32_t r = 0; r < rows; ++r) {
      const int64_t off = dst.row_offset(row0 + r);
      if (off < 0) continue;
      if (dst.heads_packed()) {
        xfer(r * row, off, row);
        continue;
      }
      for (int h = 0; h < dst.shape.n_kv_heads; ++h)
        xfer(r * row + size_t(h) * head, off + int64_t(size_t(h) * dst.head_stride_bytes()), head);
    }
  }

  // Baselines and format-2 Quant blobs: decode on the host, copy the rows up (synchronous).
  void host_path(std::span<const uint8_t> blob, const KvDest& dst, size_t index) {
    const BlobHeader h = parse_blob_header(blob);
    KvBuffer tmp = cpu_.allocate(dst.shape, dst.dtype, h.tokens, h.first_pos, dst.keys_pre_rope, dst.rope_theta);
    try {
      cpu_.submit(blob, tmp.dest);
    } catch (const CorruptBlob& e) {
      throw CorruptBlob("blob " + std::to_string(index) + ": " + e.what());
    }
    const uint32_t row0 = check_dest_fits(h, dst);
    const size_t row_bytes = size_t(dst.shape.kv_dim()) * dest_elem_bytes(dst.dtype);
    for (int l = 0; l < dst.shape.n_layers; ++l)
      for (int kind = 0; kind < 2; ++kind) {
        auto* to = static_cast<uint8_t*>(kind == 0 ? dst.k[size_t(l)] : dst.v[size_t(l)]);
        auto* from = static_cast<uint8_t*>(kind == 0 ? tmp.dest.k[size_t(l)] : tmp.dest.v[size_t(l)]);
        copy_rows(from, to, dst, row0, h.tokens, cudaMemcpyHostToDevice);
      }
    stats_.blobs += 1;
    stats_.blob_bytes += blob.size();
    stats_.output_bytes += 2 * size_t(dst.shape.n_layers) * h.tokens * row_bytes;
  }

  // Waits for a slot's batch and checks its status words (throws CorruptBlob for the first bad chunk).
  void wait_slot(Slot& s) {
    if (!s.busy) return;
    s.busy = false;
    KV_CUDA(cudaEventSynchronize(s.done));
    float h2d = 0, all = 0;
    if (cudaEventElapsedTime(&h2d, s.start, s.h2d_done) == cudaSuccess &&
        cudaEventElapsedTime(&all, s.start, s.done) == cudaSuccess)
      stats_.h2d_ms += h2d, stats_.kernel_ms += all - h2d;
    const auto* st = reinterpret_cast<const uint32_t*>(s.status_host.p);
    for (size_t c = 0; c < s.escapes.size(); ++c) check_chunk_status(st + 2 * c, s.escapes[c], s.blob_index[c]);
  }

  const HdLevel* ensure_level(uint8_t level) {
    if (!profile_) throw std::invalid_argument("cuda decoder: quant blob but no profile set (set_profile)");
    if (level >= dev_levels_.size()) throw CorruptBlob("chunk blob: level not in profile");
    if (!dev_levels_[level]) {
      const LevelDecodeTables t = build_decode_tables(*profile_, level);
      auto d = std::make_unique<DevLevel>();
      auto up = [](DeviceBuf& b, const void* src, size_t n) {
        b.reserve(n);
        KV_CUDA(cudaMemcpy(b.p, src, n, cudaMemcpyHostToDevice));
      };
      up(d->slots, t.slots.data(), t.slots.size() * 4);
      up(d->mean, t.mean.data(), t.mean.size() * 4);
      up(d->step, t.step.data(), t.step.size() * 4);
      up(d->q_min, t.q_min.data(), t.q_min.size() * 4);
      up(d->escape, t.escape.data(), t.escape.size() * 2);
      host_levels_[level] = HdLevel{reinterpret_cast<const uint32_t*>(d->slots.p), reinterpret_cast<const float*>(d->mean.p),
                                    reinterpret_cast<const float*>(d->step.p), reinterpret_cast<const int32_t*>(d->q_min.p),
                                    reinterpret_cast<const uint16_t*>(d->escape.p), uint32_t(t.scale_bits)};
      KV_CUDA(cudaMemcpy(levels_arr_.p + level * sizeof(HdLevel), &host_levels_[level], sizeof(HdLevel),
                         cudaMemcpyHostToDevice));
      dev_levels_[level] = std::move(d);
    }
    return reinterpret_cast<const HdLevel*>(levels_arr_.p);
  }

  void enqueue(std::span<const std::span<const uint8_t>> blobs, const std::vector<BlobHeader>& hs,
               const std::vector<size_t>& idx, const KvDest& dst) {
    Slot& s = slots_[next_];
    next_ = (next_ + 1) % slots_.size();
    wait_slot(s);  // the slot's previous batch is done with its buffers
    const KvShape& shape = dst.shape;
    const uint32_t n = uint32_t(idx.size()), d = uint32_t(shape.kv_dim()), L = uint32_t(shape.n_layers);
    const bool rope = !dst.keys_pre_rope;
    // Host preparation (all validation that can happen on the host).
    std::vector<PreparedQuantChunk> pcs(n);
    std::vector<float> cs_tmp;  // cos/sin rows beyond the cache (copied into staging at once)
    const HdLevel* levels = nullptr;
    size_t bytes = align_up(n * sizeof(HdChunk)) + align_up(2 * L * sizeof(void*));
    for (uint32_t c = 0; c < n; ++c) {
      const size_t i = idx[c];
      try {
        levels = ensure_level(hs[i].level);
        pcs[c] = prepare_quant_chunk(blobs[i], hs[i], *profile_, profile_hash_);
      } catch (const CorruptBlob& e) {
        throw CorruptBlob("blob " + std::to_string(submitted_ + i) + ": " + e.what());
      }
      const auto& lay = pcs[c].layout;
      bytes += align_up((lay.streams + 1) * 4) + align_up(lay.final_state.size() * 4) + 2 * align_up(lay.escapes * 4) +
               align_up(blobs[i].size()) + align_up(lay.tokens.size() * 4) + align_up(size_t(hs[i].tokens) * 8);
      if (rope) bytes += align_up(size_t(hs[i].tokens) * shape.head_dim * sizeof(float));
    }
    s.status_offset = bytes;
    s.host.reserve(bytes);
    s.dev.reserve(bytes + size_t(n) * 8);
    s.status_host.reserve(size_t(n) * 8);
    uint8_t* const hb = s.host.p;
    uint8_t* const db = s.dev.p;
    auto dev_of = [&](const uint8_t* hp) { return db + (hp - hb); };
    size_t pos = 0;
    auto put = [&](const void* src, size_t len) {
      uint8_t* p = hb + pos;
      if (len) std::memcpy(p, src, len);
      pos += align_up(len);
      return p;
    };
    auto* chunks = reinterpret_cast<HdChunk*>(hb);
    pos = align_up(n * sizeof(HdChunk));
    std::vector<void*> base;
    for (uint32_t l = 0; l < L; ++l) base.push_back(dst.k[l]), base.push_back(dst.v[l]);
    const uint8_t* base_h = put(base.data(), base.size() * sizeof(void*));
    auto* status_dev = reinterpret_cast<uint32_t*>(db + s.status_offset);
    uint32_t max_groups = 0, max_pairs = 0;
    std::vector<int64_t> rows;
    s.escapes.assign(n, 0);
    s.blob_index.assign(n, 0);
    for (uint32_t c = 0; c < n; ++c) {
      const size_t i = idx[c];
      const BlobHeader& h = hs[i];
      const PreparedQuantChunk& pc = pcs[c];
      const uint32_t row0 = h.first_pos - dst.pos_base;
      rows.resize(h.tokens);
      for (uint32_t t = 0; t < h.tokens; ++t) rows[t] = dst.row_offset(row0 + t);
      HdChunk hc = hd_chunk_of(blobs[i], h, pc.layout, pc.esc_index, pc.esc_q, *profile_);  // host pointers, replaced:
      hc.group_offset = reinterpret_cast<const uint32_t*>(dev_of(put(pc.layout.offset.data(), pc.layout.offset.size() * 4)));
      hc.final_state = reinterpret_cast<const uint32_t*>(
          dev_of(put(pc.layout.final_state.data(), pc.layout.final_state.size() * 4)));
      hc.esc_index = reinterpret_cast<const uint32_t*>(dev_of(put(pc.esc_index.data(), pc.esc_index.size() * 4)));
      hc.esc_q = reinterpret_cast<const int32_t*>(dev_of(put(pc.esc_q.data(), pc.esc_q.size() * 4)));
      hc.data = dev_of(put(blobs[i].data(), blobs[i].size()));
      hc.row_offset = reinterpret_cast<const int64_t*>(dev_of(put(rows.data(), rows.size() * 8)));
      hc.tokens = nullptr, hc.token_kv = nullptr;
      if (pc.layout.skip_values) {
        hc.tokens = reinterpret_cast<const int32_t*>(dev_of(put(pc.layout.tokens.data(), pc.layout.tokens.size() * 4)));
        hc.token_kv = reinterpret_cast<const float*>(token_kv_.p);
      }
      hc.level = h.level;
      if (rope) {
        // (rope_rows may grow the host cache: take the pointer only right before copying it)
        const float* r = rope_.rows(dst.rope_theta, shape.head_dim, h.first_pos, h.tokens, cs_tmp);
        hc.rope_cs = reinterpret_cast<const float*>(dev_of(put(r, size_t(h.tokens) * shape.head_dim * sizeof(float))));
      }
      hc.status = status_dev + 2 * c;
      chunks[c] = hc;
      max_groups = std::max(max_groups, hc.groups);
      max_pairs = std::max(max_pairs, token_pairs_hd(hc));
      s.escapes[c] = pc.layout.escapes;
      s.blob_index[c] = submitted_ + i;
      stats_.blobs += 1;
      stats_.blob_bytes += blobs[i].size();
      stats_.output_bytes += 2 * size_t(L) * h.tokens * d * dest_elem_bytes(dst.dtype);
    }
    const HdOut out{reinterpret_cast<void* const*>(dev_of(base_h)), hd_dtype(dst.dtype), rope ? 1u : 0u,
                    dst.head_stride_bytes()};
    KV_CUDA(cudaEventRecord(s.start, s.stream));
    KV_CUDA(cudaMemcpyAsync(db, hb, pos, cudaMemcpyHostToDevice, s.stream));
    KV_CUDA(cudaEventRecord(s.h2d_done, s.stream));
    KV_CUDA(cudaMemsetAsync(status_dev, 0, size_t(n) * 8, s.stream));
    const auto* chunks_dev = reinterpret_cast<const HdChunk*>(db);
    KV_CUDA(launch_decode_groups(chunks_dev, n, max_groups, levels, out, s.stream));
    KV_CUDA(launch_fill_token_layer(chunks_dev, n, max_pairs, out, s.stream));
    KV_CUDA(cudaMemcpyAsync(s.status_host.p, status_dev, size_t(n) * 8, cudaMemcpyDeviceToHost, s.stream));
    KV_CUDA(cudaEventRecord(s.done, s.stream));
    s.busy = true;
    stats_.batches += 1;
  }

  std::string device_name_;
  std::vector<Slot> slots_;
  size_t next_ = 0;        // next slot to use
  size_t submitted_ = 0;   // blobs submitted since the last finish() (error messages)
  std::unique_ptr<Profile> profile_;
  uint64_t profile_hash_ = 0;
  CpuDecoder cpu_;         // baselines (non-Quant blobs)
  std::vector<std::unique_ptr<DevLevel>> dev_levels_;
  std::vector<HdLevel> host_levels_;
  DeviceBuf levels_arr_;   // HdLevel[levels] on the device
  DeviceBuf token_kv_;     // the profile's token table (layer 0 of token-table blobs)
  RopeTable rope_;         // host cos/sin rows (decode_engine.h), uploaded per batch
};

}  // namespace

namespace {
// Evidence of an NVIDIA GPU that does not depend on the CUDA runtime working (driver nodes).
bool gpu_nodes_present() {
  std::error_code ec;
  if (std::filesystem::exists("/dev/nvidia0", ec)) return true;
  const std::filesystem::path gpus("/proc/driver/nvidia/gpus");
  return std::filesystem::is_directory(gpus, ec) && !std::filesystem::is_empty(gpus, ec);
}
}  // namespace

CudaProbe probe() {
  CudaProbe p;
  p.compiled = true;
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    p.message = std::string("cudaGetDeviceCount failed: ") + cudaGetErrorString(e);
    cudaGetLastError();  // reset the runtime's last-error slot
    if (e != cudaErrorNoDevice && gpu_nodes_present()) {
      p.found = 1;  // a GPU is there but the runtime cannot use it (driver, permissions, ...)
      p.message += " although the system shows an NVIDIA GPU (/dev/nvidia0 or /proc/driver/nvidia/gpus)";
    }
    return p;
  }
  if (n <= 0) {
    p.message = "cudaGetDeviceCount found no CUDA device";
    return p;
  }
  p.found = n;
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
    p.message = "cudaGetDeviceProperties failed for device 0";
    cudaGetLastError();
    return p;
  }
  if (prop.major < 8) {
    p.message = std::string(prop.name) + " is sm_" + std::to_string(prop.major) + std::to_string(prop.minor) +
                "; the decoder is built for sm_80 and newer";
    return p;
  }
  p.devices = n;
  p.message = std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ", " +
              std::to_string(prop.totalGlobalMem >> 20) + " MiB)";
  return p;
}

std::unique_ptr<Decoder> make_cuda_decoder(const CudaDecoderOptions& opt) {
  const CudaProbe p = probe();
  if (p.devices == 0) throw std::runtime_error("CUDA decoder: " + p.message);
  return std::make_unique<CudaDecoder>(opt);
}

namespace {
const bool registered = [] {
  register_cuda_backend(CudaBackend{&probe, +[]() -> std::unique_ptr<Decoder> { return make_cuda_decoder(); }});
  return true;
}();
}  // namespace

}  // namespace kvstream::codec::cuda
