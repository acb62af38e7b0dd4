#include "store/context_codec.h"

#include <cstring>
#include <stdexcept>

#include "codec/container.h"

namespace kvstream::store {
namespace {

// ---- raw fp32 ----
// Layout: u32 magic 'KVRW', i32 n_layers, n_kv_heads, head_dim, u64 tokens, then per layer the K
// rows then the V rows (fp32), then the token ids.
class RawCodec final : public ContextCodec {
 public:
  RawCodec(KvShape shape, std::string model, float theta) : shape_(shape), model_(std::move(model)), theta_(theta) {}
  std::string name() const override { return "raw-fp32"; }
  int num_levels() const override { return 1; }
  std::string level_name(int) const override { return "fp32"; }

  std::vector<uint8_t> encode(const KvCache& kv) const override {
    kv.validate();
    if (!(kv.shape == shape_)) throw std::invalid_argument("raw codec: cache shape mismatch");
    if (!kv.keys_pre_rope) throw std::invalid_argument("raw codec: store keys before RoPE");
    const size_t n = kv.num_tokens(), d = shape_.kv_dim();
    std::vector<uint8_t> out(kHeader + n * row_bytes() + 4 * n);
    uint8_t* p = out.data();
    const uint32_t magic = kMagic;
    const int32_t dims[3] = {shape_.n_layers, shape_.n_kv_heads, shape_.head_dim};
    const uint64_t n64 = n;
    std::memcpy(p, &magic, 4);
    std::memcpy(p + 4, dims, 12);
    std::memcpy(p + 16, &n64, 8);
    p += kHeader;
    for (size_t t = 0; t < n; ++t)
      for (int l = 0; l < shape_.n_layers; ++l) {
        std::memcpy(p, kv.k_row(l, t), 4 * d), p += 4 * d;
        std::memcpy(p, kv.v_row(l, t), 4 * d), p += 4 * d;
      }
    if (n) std::memcpy(p, kv.tokens.data(), 4 * n);
    return out;
  }

  uint64_t level_bytes(std::span<const uint8_t> payload, int level, size_t begin, size_t end) const override {
    check(payload, level, begin, end);
    return (end - begin) * (row_bytes() + 4);
  }

  KvCache decode(std::span<const uint8_t> payload, int level, size_t begin, size_t end) const override {
    const size_t n = check(payload, level, begin, end), d = shape_.kv_dim();
    KvCache kv(shape_, model_, theta_, true);
    kv.resize(end - begin);
    const uint8_t* p = payload.data() + kHeader + begin * row_bytes();
    for (size_t t = 0; t < end - begin; ++t)
      for (int l = 0; l < shape_.n_layers; ++l) {
        std::memcpy(kv.k_row(l, t), p, 4 * d), p += 4 * d;
        std::memcpy(kv.v_row(l, t), p, 4 * d), p += 4 * d;
      }
    std::memcpy(kv.tokens.data(), payload.data() + kHeader + n * row_bytes() + 4 * begin, 4 * (end - begin));
    return kv;
  }

 private:
  static constexpr uint32_t kMagic = 0x5752564b;  // "KVRW"
  static constexpr size_t kHeader = 24;
  size_t row_bytes() const { return 2ull * shape_.n_layers * shape_.kv_dim() * 4; }
  size_t check(std::span<const uint8_t> payload, int level, size_t begin, size_t end) const {
    if (level != 0) throw std::invalid_argument("raw codec: only level 0");
    if (payload.size() < kHeader) throw std::runtime_error("raw codec: truncated payload");
    uint32_t magic;
    int32_t dims[3];
    uint64_t n;
    std::memcpy(&magic, payload.data(), 4);
    std::memcpy(dims, payload.data() + 4, 12);
    std::memcpy(&n, payload.data() + 16, 8);
    if (magic != kMagic || dims[0] != shape_.n_layers || dims[1] != shape_.n_kv_heads || dims[2] != shape_.head_dim)
      throw std::runtime_error("raw codec: bad header");
    if (n > (payload.size() - kHeader) / (row_bytes() + 4) || kHeader + n * (row_bytes() + 4) != payload.size())
      throw std::runtime_error("raw codec: payload size does not match its token count");
    if (begin > end || end > n) throw std::out_of_range("raw codec: token range outside the payload");
    return static_cast<size_t>(n);
  }
  KvShape shape_;
  std::string model_;
  float theta_;
};

// ---- codec container ----
class ContainerCodec final : public ContextCodec {
 public:
  ContainerCodec(codec::Profile profile, uint32_t chunk_tokens, int threads)
      : profile_(std::move(profile)), ladder_(codec::default_ladder(profile_)), chunk_(chunk_tokens), threads_(threads) {
    profile_.validate();
    if (chunk_tokens == 0) throw std::invalid_argument("container codec: chunk_tokens must be positive");
    // A server keeps the decode tables and the profile hash resident; build them once here
    // instead of on every decode_container() call.
    hash_ = profile_.hash();
    for (const auto& lv : ladder_)
      tables_.push_back(lv.method == codec::Method::Quant ? codec::build_decode_tables(profile_, lv.profile_level)
                                                          : codec::LevelDecodeTables{});
  }
  std::string name() const override { return "kvs-container"; }
  int num_levels() const override { return static_cast<int>(ladder_.size()); }
  std::string level_name(int level) const override { return ladder_.at(level).name; }

  std::vector<uint8_t> encode(const KvCache& kv) const override {
    if (!kv.keys_pre_rope) throw std::invalid_argument("container codec: store keys before RoPE");
    return codec::encode_container(kv, profile_, ladder_, chunk_, {}, threads_);
  }

  uint64_t level_bytes(std::span<const uint8_t> payload, int level, size_t begin, size_t end) const override {
    const auto r = codec::ContainerReader::parse({payload.begin(), payload.end()});
    const auto [c0, c1] = chunks(r.info(), level, begin, end);
    uint64_t bytes = 0;
    for (uint32_t c = c0; c < c1; ++c) bytes += r.blob_size(c, level);
    return bytes;
  }

  KvCache decode(std::span<const uint8_t> payload, int level, size_t begin, size_t end) const override {
    const auto r = codec::ContainerReader::parse({payload.begin(), payload.end()});
    const auto [c0, c1] = chunks(r.info(), level, begin, end);
    if (c0 == c1) {
      KvCache empty(profile_.shape, profile_.model_name, profile_.rope_theta, true);
      return empty;
    }
    const auto& info = r.info();
    const auto& lv = info.ladder[level];
    if (lv.method == codec::Method::Text) throw std::invalid_argument("container codec: text carries no KV");
    if (info.profile_hash != hash_) throw std::runtime_error("container codec: payload made with another profile");
    const bool quant = lv.method == codec::Method::Quant;
    if (quant && (level >= static_cast<int>(ladder_.size()) || ladder_[level].profile_level != lv.profile_level))
      throw std::runtime_error("container codec: payload ladder differs from this codec's");
    const int text = info.level_index("text");
    const uint32_t base = static_cast<uint32_t>(info.chunk_begin(c0));
    KvCache kv(info.shape, info.model_name, info.rope_theta, /*pre_rope=*/true);
    kv.resize(info.chunk_end(c1 - 1) - base);
    for (uint32_t c = c0; c < c1; ++c) {
      codec::decode_chunk(r.blob(c, level), &profile_, kv, quant ? &tables_[level] : nullptr, base);
      codec::decode_chunk(r.blob(c, text), nullptr, kv, nullptr, base);  // token ids
    }
    const size_t off = begin - r.info().chunk_begin(c0);
    return kv.slice(off, off + (end - begin));
  }

 private:
  std::pair<uint32_t, uint32_t> chunks(const codec::ContainerInfo& info, int level, size_t begin, size_t end) const {
    if (level < 0 || level >= static_cast<int>(info.ladder.size()))
      throw std::out_of_range("container codec: no level " + std::to_string(level));
    if (begin > end || end > info.num_tokens) throw std::out_of_range("container codec: token range outside the context");
    if (begin == end) return {0, 0};
    return {static_cast<uint32_t>(begin / info.chunk_tokens),
            static_cast<uint32_t>((end + info.chunk_tokens - 1) / info.chunk_tokens)};
  }
  codec::Profile profile_;
  std::vector<codec::LadderLevel> ladder_;
  uint64_t hash_ = 0;
  std::vector<codec::LevelDecodeTables> tables_;  // [ladder level]
  uint32_t chunk_;
  int threads_;
};

}  // namespace

std::unique_ptr<ContextCodec> make_raw_codec(KvShape shape, std::string model_name, float rope_theta) {
  return std::make_unique<RawCodec>(shape, std::move(model_name), rope_theta);
}

std::unique_ptr<ContextCodec> make_container_codec(codec::Profile profile, uint32_t chunk_tokens, int threads) {
  return std::make_unique<ContainerCodec>(std::move(profile), chunk_tokens, threads);
}

}  // namespace kvstream::store
