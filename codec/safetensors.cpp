#include "codec/safetensors.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <charconv>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "codec/io_error.h"
#include <stdexcept>

#include "codec/half.h"

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace kvstream {

namespace {

constexpr uint64_t kMaxHeader = 64ull << 20;
constexpr int kMaxLayers = 4096;
constexpr int kMaxJsonDepth = 8;

[[noreturn]] void fail(const std::string& what, const std::string& why) {
  throw kvstream::Error(ErrorCode::kCorrupt, what + ": invalid safetensors KV file: " + why);
}

enum class AnyDtype { F32, F16, BF16, I32 };

struct Entry {
  std::string name;
  AnyDtype dtype;
  std::vector<uint64_t> shape;
  uint64_t begin = 0, end = 0;
};

struct Header {
  std::vector<Entry> entries;
  std::map<std::string, std::string> metadata;
  KvShape shape;
  uint64_t tokens = 0;
  std::vector<const Entry*> k, v;  // by layer
  const Entry* tok = nullptr;
};

size_t any_size(AnyDtype d) { return d == AnyDtype::F16 || d == AnyDtype::BF16 ? 2 : 4; }
const char* any_name(AnyDtype d) {
  switch (d) {
    case AnyDtype::F32: return "F32";
    case AnyDtype::F16: return "F16";
    case AnyDtype::BF16: return "BF16";
    case AnyDtype::I32: return "I32";
  }
  return "?";
}

// nlohmann's parser recurses per nesting level: bound the depth before parsing.
void check_depth(const char* p, size_t n, const std::string& what) {
  int depth = 0;
  bool in_str = false;
  for (size_t i = 0; i < n; ++i) {
    const char c = p[i];
    if (in_str) {
      if (c == '\\') ++i;
      else if (c == '"') in_str = false;
    } else if (c == '"') {
      in_str = true;
    } else if (c == '{' || c == '[') {
      if (++depth > kMaxJsonDepth) fail(what, "header JSON nests deeper than " + std::to_string(kMaxJsonDepth));
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
}

uint64_t get_u64(const nlohmann::json& j, const std::string& what, const std::string& field) {
  if (!j.is_number_unsigned() && !(j.is_number_integer() && j.get<int64_t>() >= 0))
    fail(what, field + " must be a non-negative integer");
  return j.get<uint64_t>();
}

// Parses and validates the JSON header against a data section of data_size bytes.
Header parse_header(const char* json_text, size_t n, uint64_t data_size, const std::string& what) {
  check_depth(json_text, n, what);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text, json_text + n);
  } catch (const nlohmann::json::exception& e) {
    fail(what, std::string("header is not valid JSON (") + e.what() + ")");
  }
  if (!j.is_object()) fail(what, "header JSON is not an object");
  Header h;
  std::map<int, const Entry*> ks, vs;
  h.entries.reserve(j.size());
  for (auto& [name, t] : j.items()) {
    if (name == "__metadata__") {
      if (!t.is_object()) fail(what, "__metadata__ is not an object");
      for (auto& [key, value] : t.items()) {
        if (!value.is_string()) fail(what, "__metadata__ value of \"" + key + "\" is not a string");
        h.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    if (!t.is_object()) fail(what, "tensor \"" + name + "\" is not an object");
    Entry e;
    e.name = name;
    const auto dt = t.find("dtype");
    if (dt == t.end() || !dt->is_string()) fail(what, "tensor \"" + name + "\" has no dtype string");
    const std::string ds = dt->get<std::string>();
    if (ds == "F32") e.dtype = AnyDtype::F32;
    else if (ds == "F16") e.dtype = AnyDtype::F16;
    else if (ds == "BF16") e.dtype = AnyDtype::BF16;
    else if (ds == "I32") e.dtype = AnyDtype::I32;
    else fail(what, "tensor \"" + name + "\" has unsupported dtype \"" + ds + "\"");
    const auto sh = t.find("shape");
    if (sh == t.end() || !sh->is_array()) fail(what, "tensor \"" + name + "\" has no shape array");
    unsigned __int128 elems = 1;
    for (const auto& d : *sh) {
      e.shape.push_back(get_u64(d, what, "shape of \"" + name + "\""));
      elems *= e.shape.back();
      if (elems > data_size) elems = uint64_t(data_size) + 1;  // saturate: cannot fit anyway
    }
    const auto off = t.find("data_offsets");
    if (off == t.end() || !off->is_array() || off->size() != 2)
      fail(what, "tensor \"" + name + "\" needs data_offsets [begin, end]");
    e.begin = get_u64((*off)[0], what, "data_offsets of \"" + name + "\"");
    e.end = get_u64((*off)[1], what, "data_offsets of \"" + name + "\"");
    if (e.begin > e.end)
      fail(what, "tensor \"" + name + "\" has unordered data_offsets [" + std::to_string(e.begin) + ", " +
                     std::to_string(e.end) + "]");
    if (e.end > data_size)
      fail(what, "tensor \"" + name + "\" data_offsets end " + std::to_string(e.end) +
                     " is beyond the data section of " + std::to_string(data_size) + " bytes");
    if (elems * any_size(e.dtype) != e.end - e.begin)
      fail(what, "tensor \"" + name + "\" holds " + std::to_string(e.end - e.begin) + " bytes but its shape and dtype " +
                     ds + " need " + (elems > data_size ? std::string("more") : std::to_string(uint64_t(elems) * any_size(e.dtype))));
    h.entries.push_back(std::move(e));
  }
  // Offsets must tile the data section exactly: no overlaps, no holes (safetensors rule).
  std::vector<const Entry*> order;
  for (const auto& e : h.entries) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t at = 0;
  for (const Entry* e : order) {
    if (e->begin < at) fail(what, "tensor \"" + e->name + "\" overlaps the previous tensor's data");
    if (e->begin > at) fail(what, "the data section has a hole before tensor \"" + e->name + "\"");
    at = e->end;
  }
  if (at != data_size)
    fail(what, "the data section has " + std::to_string(data_size - at) + " unindexed trailing bytes");

  // Names: k.{l}, v.{l} for l = 0..L-1, and tokens.
  for (const auto& e : h.entries) {
    if (e.name == "tokens") {
      h.tok = &e;
      continue;
    }
    const bool is_k = e.name.rfind("k.", 0) == 0, is_v = e.name.rfind("v.", 0) == 0;
    const std::string idx = e.name.size() > 2 ? e.name.substr(2) : "";
    int layer = -1;
    if ((is_k || is_v) && !idx.empty() && idx.size() <= 5 && (idx == "0" || idx[0] != '0') &&
        std::all_of(idx.begin(), idx.end(), [](char c) { return c >= '0' && c <= '9'; }))
      layer = std::stoi(idx);
    if (layer < 0 || layer >= kMaxLayers) fail(what, "unexpected tensor \"" + e.name + "\" (expected k.{layer}, v.{layer}, tokens)");
    if (e.dtype == AnyDtype::I32) fail(what, "tensor \"" + e.name + "\" must be F32, F16 or BF16, not I32");
    (is_k ? ks : vs)[layer] = &e;
  }
  if (!h.tok) fail(what, "missing tensor \"tokens\"");
  if (h.tok->dtype != AnyDtype::I32 || h.tok->shape.size() != 1)
    fail(what, "tensor \"tokens\" must be I32 with shape [tokens]");
  h.tokens = h.tok->shape[0];
  if (ks.empty()) fail(what, "missing tensor \"k.0\"");
  const int layers = static_cast<int>(std::max(ks.size(), vs.size()));
  for (int l = 0; l < layers; ++l) {
    for (auto* m : {&ks, &vs})
      if (!m->count(l)) fail(what, std::string("missing tensor \"") + (m == &ks ? "k." : "v.") + std::to_string(l) + "\"");
    h.k.push_back(ks[l]);
    h.v.push_back(vs[l]);
  }
  const auto& s0 = h.k[0]->shape;
  if (s0.size() != 3) fail(what, "tensor \"k.0\" must have shape [tokens, kv_heads, head_dim]");
  if (s0[1] == 0 || s0[2] == 0 || s0[1] > 65536 || s0[2] > 65536)
    fail(what, "kv_heads and head_dim must be in 1..65536");
  // Their product is a KvShape's int kv_dim (and 2 * layers * kv_dim values per token): bounded
  // even when the file has no tokens and so no data to bound it by.
  if (s0[1] * s0[2] > (uint64_t(1) << 24))
    fail(what, "kv_heads x head_dim = " + std::to_string(s0[1] * s0[2]) + " exceeds 2^24 values per token and layer");
  for (int l = 0; l < layers; ++l)
    for (const Entry* e : {h.k[l], h.v[l]})
      if (e->shape != s0) fail(what, "tensor \"" + e->name + "\" shape differs from k.0's");
  if (s0[0] != h.tokens)
    fail(what, "tokens has " + std::to_string(h.tokens) + " ids but k.0 has " + std::to_string(s0[0]) + " rows");
  h.shape = KvShape{layers, int(s0[1]), int(s0[2])};
  auto meta_int = [&](const char* key, int want) {
    auto it = h.metadata.find(key);
    if (it == h.metadata.end()) return;
    if (it->second != std::to_string(want))
      fail(what, std::string("__metadata__ ") + key + " = \"" + it->second + "\" disagrees with the tensors (" +
                     std::to_string(want) + ")");
  };
  meta_int("n_layers", h.shape.n_layers);
  meta_int("n_kv_heads", h.shape.n_kv_heads);
  meta_int("head_dim", h.shape.head_dim);
  return h;
}

float meta_theta(const Header& h, const std::string& what) {
  auto it = h.metadata.find("rope_theta");
  if (it == h.metadata.end()) return 10000.0f;
  float f = 0;
  const auto& s = it->second;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), f);
  if (ec != std::errc() || p != s.data() + s.size() || !(f > 0))
    fail(what, "__metadata__ rope_theta \"" + s + "\" is not a positive number");
  return f;
}

bool meta_pre_rope(const Header& h, const std::string& what) {
  auto it = h.metadata.find("keys_pre_rope");
  if (it == h.metadata.end()) return false;
  if (it->second == "true") return true;
  if (it->second == "false") return false;
  fail(what, "__metadata__ keys_pre_rope must be \"true\" or \"false\", not \"" + it->second + "\"");
}

// Reads the header of an in-memory file; returns the header and where the data section starts.
Header split(const uint8_t* data, size_t size, const std::string& what, const uint8_t** data_start,
             uint64_t file_size_for_data = UINT64_MAX) {
  if (size < 8) fail(what, "file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  uint64_t n;
  std::memcpy(&n, data, 8);
  const uint64_t file_size = file_size_for_data == UINT64_MAX ? size : file_size_for_data;
  if (n > kMaxHeader) fail(what, "header length " + std::to_string(n) + " exceeds the 64 MiB limit");
  if (n > file_size - 8)
    fail(what, "header length " + std::to_string(n) + " runs past the end of the " + std::to_string(file_size) + "-byte file");
  if (n > size - 8) fail(what, "header truncated");
  if (data_start) *data_start = data + 8 + n;
  return parse_header(reinterpret_cast<const char*>(data) + 8, n, file_size - 8 - n, what);
}

void write_values(const std::vector<float>& src, Dtype dt, uint8_t* out) {
  const size_t n = src.size();
  if (dt == Dtype::F32) {
    if (n) std::memcpy(out, src.data(), n * 4);
    return;
  }
  std::vector<uint16_t> tmp(n);
  if (dt == Dtype::F16) f32_to_f16(src.data(), tmp.data(), n);
  else f32_to_bf16(src.data(), tmp.data(), n);
  if (n) std::memcpy(out, tmp.data(), n * 2);
}

void read_values(const uint8_t* p, AnyDtype dt, size_t n, std::vector<float>& dst) {
  dst.resize(n);
  if (n == 0) return;
  if (dt == AnyDtype::F32) {
    std::memcpy(dst.data(), p, n * 4);
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    dst[i] = dt == AnyDtype::F16 ? f16_to_f32(h) : bf16_to_f32(h);
  }
}

std::string float_string(float f) {
  char buf[64];
  auto [p, ec] = std::to_chars(buf, buf + sizeof(buf), f);
  return std::string(buf, p);
}

}  // namespace

const char* dtype_name(Dtype d) {
  switch (d) {
    case Dtype::F32: return "F32";
    case Dtype::F16: return "F16";
    case Dtype::BF16: return "BF16";
  }
  return "?";
}

Dtype parse_dtype(std::string_view s) {
  std::string l(s);
  for (char& c : l) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (l == "f32" || l == "fp32" || l == "float32") return Dtype::F32;
  if (l == "f16" || l == "fp16" || l == "float16") return Dtype::F16;
  if (l == "bf16" || l == "bfloat16") return Dtype::BF16;
  throw std::invalid_argument("unknown dtype \"" + std::string(s) + "\" (expected f32, f16 or bf16)");
}

size_t dtype_size(Dtype d) { return d == Dtype::F32 ? 4 : 2; }

std::vector<uint8_t> kv_to_safetensors(const KvCache& kv, Dtype dtype) {
  kv.validate();
  const uint64_t T = kv.num_tokens();
  const uint64_t kv_bytes = T * kv.shape.kv_dim() * dtype_size(dtype);
  nlohmann::json h = nlohmann::json::object();
  h["__metadata__"] = {{"format", "kvstream-kv"},
                       {"model", kv.model_name},
                       {"rope_theta", float_string(kv.rope_theta)},
                       {"n_layers", std::to_string(kv.shape.n_layers)},
                       {"n_kv_heads", std::to_string(kv.shape.n_kv_heads)},
                       {"head_dim", std::to_string(kv.shape.head_dim)},
                       {"keys_pre_rope", kv.keys_pre_rope ? "true" : "false"},
                       {"dtype", dtype_name(dtype)}};
  uint64_t off = 0;
  const std::vector<uint64_t> shape{T, uint64_t(kv.shape.n_kv_heads), uint64_t(kv.shape.head_dim)};
  for (int l = 0; l < kv.shape.n_layers; ++l)
    for (const char* kind : {"k.", "v."}) {
      h[kind + std::to_string(l)] = {{"dtype", dtype_name(dtype)}, {"shape", shape}, {"data_offsets", {off, off + kv_bytes}}};
      off += kv_bytes;
    }
  h["tokens"] = {{"dtype", "I32"}, {"shape", {T}}, {"data_offsets", {off, off + 4 * T}}};
  off += 4 * T;
  std::string text = h.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::vector<uint8_t> out(8 + text.size() + off);
  const uint64_t n = text.size();
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, text.data(), text.size());
  uint8_t* p = out.data() + 8 + text.size();
  for (int l = 0; l < kv.shape.n_layers; ++l) {
    write_values(kv.k[l], dtype, p);
    p += kv_bytes;
    write_values(kv.v[l], dtype, p);
    p += kv_bytes;
  }
  if (T) std::memcpy(p, kv.tokens.data(), 4 * T);
  return out;
}

void write_safetensors(const std::string& path, const KvCache& kv, Dtype dtype) {
  const auto bytes = kv_to_safetensors(kv, dtype);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw file_error("cannot open " + path + " for writing");
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  out.close();
  if (!out) throw file_error("failed writing " + path);
}

KvCache kv_from_safetensors(const uint8_t* data, size_t size, const std::string& what) {
  const uint8_t* body = nullptr;
  const Header h = split(data, size, what, &body);
  KvCache kv(h.shape, "", meta_theta(h, what), meta_pre_rope(h, what));
  if (auto it = h.metadata.find("model"); it != h.metadata.end()) kv.model_name = it->second;
  kv.tokens.resize(h.tokens);
  if (h.tokens) std::memcpy(kv.tokens.data(), body + h.tok->begin, 4 * h.tokens);
  const size_t per_layer = h.tokens * h.shape.kv_dim();
  for (int l = 0; l < h.shape.n_layers; ++l) {
    read_values(body + h.k[l]->begin, h.k[l]->dtype, per_layer, kv.k[l]);
    read_values(body + h.v[l]->begin, h.v[l]->dtype, per_layer, kv.v[l]);
  }
  kv.validate();
  return kv;
}

static std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw file_error("cannot open KV file " + path);
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) throw file_error("cannot read KV file " + path);
  in.seekg(0);
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size))
    throw file_error("cannot read KV file " + path + ": short read");
  return bytes;
}

KvCache read_safetensors(const std::string& path) {
  const auto bytes = read_all(path);
  return kv_from_safetensors(bytes.data(), bytes.size(), path);
}

SafetensorsInfo inspect_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw file_error("cannot open KV file " + path);
  in.seekg(0, std::ios::end);
  const std::streamoff fsize = in.tellg();
  if (fsize < 0) throw file_error("cannot read KV file " + path);
  in.seekg(0);
  // Read only the length and the header (bounded by kMaxHeader and the file size).
  std::vector<uint8_t> head(size_t(std::min<std::streamoff>(fsize, 8)));
  in.read(reinterpret_cast<char*>(head.data()), std::streamsize(head.size()));
  if (head.size() == 8) {
    uint64_t n;
    std::memcpy(&n, head.data(), 8);
    if (n <= kMaxHeader && n <= uint64_t(fsize) - 8) {
      head.resize(8 + n);
      in.read(reinterpret_cast<char*>(head.data()) + 8, std::streamsize(n));
      if (!in) throw file_error("cannot read KV file " + path + ": short read");
    }
  }
  const Header h = split(head.data(), head.size(), path, nullptr, uint64_t(fsize));
  SafetensorsInfo info;
  info.file_bytes = size_t(fsize);
  info.header_bytes = head.size() - 8;
  info.num_tokens = h.tokens;
  info.shape = h.shape;
  info.dtype = any_name(h.k[0]->dtype);
  for (int l = 0; l < h.shape.n_layers; ++l)
    if (h.k[l]->dtype != h.k[0]->dtype || h.v[l]->dtype != h.k[0]->dtype) info.dtype = "mixed";
  if (auto it = h.metadata.find("model"); it != h.metadata.end()) info.model_name = it->second;
  info.rope_theta = meta_theta(h, path);
  info.keys_pre_rope = meta_pre_rope(h, path);
  info.metadata.assign(h.metadata.begin(), h.metadata.end());
  return info;
}

}  // namespace kvstream
