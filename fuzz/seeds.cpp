// Seed inputs made from the real data (see seeds.h).
#include "fuzz/seeds.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "codec/container.h"
#include "codec/safetensors.h"
#include "fuzz/fixture.h"
#include "model/checkpoint.h"
#include "store/key.h"
#include "store/record.h"
#include "streamer/context_source.h"
#include "streamer/auth.h"
#include "streamer/wire.h"

namespace kvstream::fuzz {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

Bytes read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("fuzz seeds: cannot read " + path);
  return Bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

// The first `lines` lines of a text file (a prefix of a real trace is a real trace).
Bytes head_lines(const Bytes& text, size_t lines) {
  size_t at = 0;
  for (size_t n = 0; n < lines && at < text.size(); ++at)
    if (text[at] == '\n') ++n;
  return Bytes(text.begin(), text.begin() + ptrdiff_t(at));
}

// A container of the narrow real KV: `tokens` tokens, chunks of `chunk`, the profile's ladder
// (with the four baselines when `baselines`).
Bytes small_container(size_t tokens, uint32_t chunk, bool baselines) {
  auto ladder = codec::default_ladder(small_profile());
  if (baselines) codec::add_baselines(ladder);
  return codec::encode_container(small_kv().slice(0, tokens), small_profile(), ladder, chunk, {}, 1);
}

Bytes payload_of(const Bytes& frame) { return Bytes(frame.begin() + streamer::kHeaderSize, frame.end()); }

// One frame of every message type, each a real message of a real exchange.
std::vector<std::pair<std::string, Bytes>> frames() {
  using namespace streamer;
  const Bytes kvs = small_container(8, 4, true);
  const codec::ContainerReader r = codec::ContainerReader::parse(kvs);
  const Bytes profile = codec::serialize_profile(small_profile());
  const Manifest m = manifest_from_container("story-1", r, profile.size());
  const auto blob = r.blob(1, 0);
  std::vector<std::pair<std::string, Bytes>> f;
  f.emplace_back("hello", encode(Hello{kProtocolVersion, kProtocolVersion, "kvstream-recv 0.1", "", {}}));
  f.emplace_back("hello_ack", encode(HelloAck{kProtocolVersion, 1u << 20, "kvstream-send 0.1", AuthMode::kNone, {}}));
  // Version 3's authenticated handshake: a tenant's HELLO, the HELLO_ACK asking for HMAC, AUTH, AUTH_OK.
  const Secret key(32, 0x5A);
  Nonce cn{}, sn{};  // fixed, so that the seeds are the same on every run
  cn.fill(0x11);
  sn.fill(0x22);
  f.emplace_back("hello_tenant", encode(Hello{kProtocolVersion, kProtocolVersion, "kvstream-recv/3", "tenant-a", cn}));
  f.emplace_back("hello_ack_auth", encode(HelloAck{kProtocolVersion, 1u << 20, "kvstream-send/3", AuthMode::kHmacSha256, sn}));
  f.emplace_back("auth", encode(AuthMsg{client_proof(key, "tenant-a", cn, sn)}));
  f.emplace_back("auth_ok", encode(AuthOk{server_proof(key, "tenant-a", cn, sn)}));
  f.emplace_back("request", encode(Request{"story-1", 250, "adaptive"}));
  f.emplace_back("manifest", encode(m));
  Manifest mr = m;  // version 3 (controller): the sender's link report at the manifest's end
  mr.link = LinkReport{true, true, 800, 750, 14480, 90000, 4096};
  f.emplace_back("manifest_report", encode(mr));
  f.emplace_back("profile_get", encode(ProfileGet{m.profile_hash}));
  f.emplace_back("profile", encode(ProfileData{m.profile_hash, profile}));
  f.emplace_back("chunk_get", encode(ChunkGet{1, 0}));
  f.emplace_back("chunk_get_text", encode(ChunkGet{0, kTextLevel}));
  ChunkData cd;
  cd.index = 1;
  cd.level = 0;
  cd.blob.assign(blob.begin(), blob.end());
  f.emplace_back("chunk_data", encode(cd));
  // version 3 (controller): a chunk with the sender's link report, a cancelled answer, CANCEL
  cd.link = LinkReport{true, false, 12000, 9000, 65483 * 10, 1250, 0};
  f.emplace_back("chunk_data_report", encode(cd));
  ChunkData cancelled;
  cancelled.index = 2;
  cancelled.status = kChunkCancelled;
  f.emplace_back("chunk_data_cancelled", encode(cancelled));
  f.emplace_back("cancel", encode(Cancel{2, kTextLevel}));
  f.emplace_back("error", encode(ErrorMsg{WireErrorCode::kUnknownContext, "unknown context"}));
  f.emplace_back("end", encode_end());
  return f;
}

std::vector<Seed> raw_seeds(const std::string& target) {
  std::vector<Seed> s;
  const std::string data = testing::data_dir();
  if (target == "wire_frame") {
    Bytes receiver, sender;  // the two directions of one fetch, each as one stream
    for (auto& [name, bytes] : frames()) {
      s.push_back({name, bytes});
      const bool from_receiver = name.rfind("hello", 0) == 0 ? name == "hello" || name == "hello_tenant"
                                 : name == "request" || name == "auth" || name.rfind("chunk_get", 0) == 0 ||
                                       name == "cancel" ||
                                       name == "profile_get" || name == "end";
      Bytes& dst = from_receiver ? receiver : sender;
      dst.insert(dst.end(), bytes.begin(), bytes.end());
    }
    s.push_back({"receiver_stream", receiver});
    s.push_back({"sender_stream", sender});
  } else if (target == "wire_message") {
    for (auto& [name, bytes] : frames()) {
      Bytes in{bytes[6]};  // the frame type byte
      const Bytes p = payload_of(bytes);
      in.insert(in.end(), p.begin(), p.end());
      s.push_back({name, in});
    }
  } else if (target == "manifest") {
    for (auto [tokens, chunk] : {std::pair{size_t(8), 4u}, {size_t(40), 16u}}) {
      const codec::ContainerReader r = codec::ContainerReader::parse(small_container(tokens, chunk, chunk == 4));
      s.push_back({"manifest_" + std::to_string(tokens), payload_of(encode(streamer::manifest_from_container("story-1", r, 4096)))});
    }
  } else if (target == "chunk_blob") {
    const KvCache& kv = testing::real_kv();
    codec::EncodeOptions o;
    o.symbols_per_stream = 512;  // several streams per blob
    for (codec::Method m : {codec::Method::Quant, codec::Method::Fp16, codec::Method::Q8, codec::Method::Q4,
                            codec::Method::ZstdFp16, codec::Method::Text}) {
      const int levels = m == codec::Method::Quant ? 3 : 1;
      for (int level = 0; level < levels; ++level)
        s.push_back({std::string(codec::method_name(m)) + "_" + std::to_string(level),
                     codec::encode_chunk(kv, 60, 64, 60, m, &testing::test_profile(), level, o)});
    }
  } else if (target == "container") {
    s.push_back({"kvs_8x4_baselines", small_container(8, 4, true)});
    s.push_back({"kvs_12x8", small_container(12, 8, false)});
  } else if (target == "profile") {
    s.push_back({"narrow_profile", codec::serialize_profile(small_profile())});
    codec::Profile one = small_profile();
    one.levels.resize(1);
    s.push_back({"narrow_profile_1level", codec::serialize_profile(one)});
  } else if (target == "safetensors") {
    for (Dtype d : {Dtype::F32, Dtype::F16, Dtype::BF16})
      s.push_back({std::string("kv_") + dtype_name(d), kv_to_safetensors(small_kv().slice(0, 4), d)});
  } else if (target == "store_record") {
    const KvCache& kv = small_kv();
    store::PrefixHasher hasher(64, "stories260K");
    store::Record r;
    r.tokens.assign(kv.tokens.begin(), kv.tokens.begin() + 8);
    r.key = hasher.key_of(r.tokens);
    r.payload = small_container(8, 4, false);
    s.push_back({"record_kvs", store::serialize_record(r)});
    r.payload = {1, 2, 3};
    s.push_back({"record_small", store::serialize_record(r)});
  } else if (target == "trace_mahimahi") {
    for (const std::string& f : files_in(data + "/traces/mahimahi")) {
      const std::string name = fs::path(f).filename().string();
      if (name.find(".down") == std::string::npos && name.find(".up") == std::string::npos) continue;
      s.push_back({name + ".head", head_lines(read_file(f), 300)});
    }
  } else if (target == "trace_cooked") {
    for (const std::string& f : files_in(data + "/traces/fcc-norway"))
      s.push_back({fs::path(f).filename().string(), read_file(f)});
  } else if (target == "tokenizer") {
    s.push_back({"tok512", read_file(testing::tokenizer_path())});
  } else if (target == "checkpoint") {
    // The bundled model's header made small (dim 8, 2 heads over 1 KV head, 1 layer, vocab 8,
    // seq 4; shared and separate classifier), weights taken from the real file's first floats.
    const Bytes real = read_file(testing::model_path());
    for (int32_t vocab : {8, -8}) {
      const int32_t h[7] = {8, 16, 1, 2, 1, vocab, 4};
      model::Config c;
      c.dim = 8, c.hidden_dim = 16, c.n_layers = 1, c.n_heads = 2, c.n_kv_heads = 1, c.vocab_size = 8;
      c.seq_len = 4, c.shared_classifier = vocab > 0;
      Bytes b(reinterpret_cast<const uint8_t*>(h), reinterpret_cast<const uint8_t*>(h) + sizeof h);
      b.insert(b.end(), real.begin() + 28, real.begin() + ptrdiff_t(c.file_bytes()));
      s.push_back({vocab > 0 ? "tiny_shared" : "tiny_classifier", b});
    }
  }
  return s;
}

std::vector<Seed> with_modes(const std::string& target, std::vector<Seed> raw) {
  if (!has_mode_byte(target)) return raw;
  std::vector<Seed> out;
  for (const Seed& r : raw)
    for (uint8_t mode : {0, 1}) {
      Seed s{r.name + ".m" + std::to_string(mode), {mode}};
      s.bytes.insert(s.bytes.end(), r.bytes.begin(), r.bytes.end());
      out.push_back(std::move(s));
    }
  return out;
}

}  // namespace

bool has_mode_byte(const std::string& t) {
  return t == "wire_frame" || t == "chunk_blob" || t == "container" || t == "profile" || t == "store_record";
}

std::vector<Seed> make_seeds(const std::string& target) { return with_modes(target, raw_seeds(target)); }

std::vector<Seed> real_files(const std::string& target) {
  const std::string data = testing::data_dir();
  std::vector<Seed> s;
  if (target == "trace_mahimahi") {
    for (const std::string& f : files_in(data + "/traces/mahimahi"))
      if (f.find(".down") != std::string::npos || f.find(".up") != std::string::npos)
        s.push_back({fs::path(f).filename().string(), read_file(f)});
  } else if (target == "checkpoint") {
    s.push_back({"stories260K.bin", read_file(testing::model_path())});
  } else if (target == "safetensors") {
    s.push_back({"kv_128.safetensors", read_file(testing::codec_data("kv_128.safetensors"))});
  } else if (target == "profile") {
    s.push_back({"test_profile", codec::serialize_profile(testing::test_profile())});
  } else if (target == "container") {
    const KvCache& kv = testing::real_kv();
    auto ladder = codec::default_ladder(testing::test_profile());
    codec::add_baselines(ladder);
    s.push_back({"kvs_128", codec::encode_container(kv, testing::test_profile(), ladder, 32, {}, 1)});
  }
  return with_modes(target, std::move(s));
}

}  // namespace kvstream::fuzz
