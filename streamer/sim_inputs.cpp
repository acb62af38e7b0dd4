// Simulator inputs from a real container (see sim_inputs.h).
#include "streamer/sim_inputs.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "codec/chunk_codec.h"
#include "streamer/context_source.h"
#include "streamer/wire.h"

namespace kvstream::streamer {

namespace fs = std::filesystem;

std::string find_profile(const std::string& dir, uint64_t hash) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return {};
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!e.is_regular_file() || e.path().extension() != ".kvprofile") continue;
    try {
      if (codec::load_profile(e.path().string()).hash() == hash) return e.path().string();
    } catch (const std::exception&) {
    }
  }
  return {};
}

LoadedContext load_context_for_sim(const std::string& kvs_path, const std::string& profile_path, int repeats) {
  auto reader = codec::ContainerReader::open(kvs_path);
  const auto& info = reader.info();
  std::string pp = profile_path;
  if (pp.empty()) pp = find_profile(fs::path(kvs_path).parent_path().string().empty() ? "." : fs::path(kvs_path).parent_path().string(), info.profile_hash);
  if (pp.empty())
    throw std::runtime_error("no profile with hash " + hash_hex(info.profile_hash) + " beside " + kvs_path +
                             " (give --profile)");
  auto profile = codec::load_profile(pp);
  if (profile.hash() != info.profile_hash) throw std::runtime_error(pp + " is not the profile " + kvs_path + " names");
  const std::string id = fs::path(kvs_path).stem().string();
  Manifest m = manifest_from_container(valid_context_id(id) ? id : "ctx", reader, fs::file_size(pp));
  m.link = relay_link_report();  // a live sender fills in its TCP state: the manifest's size with it
  SimInputs in;
  in.spec = spec_from_manifest(m);
  in.context = m.context_id;
  in.manifest_bytes = encode(m).size();
  in.profile_bytes = fs::file_size(pp) + 16 + 2 + 16 + 4;
  std::vector<codec::LevelDecodeTables> tables;  // built once, as the receiver does
  for (size_t l = 0; l < profile.levels.size(); ++l) tables.push_back(codec::build_decode_tables(profile, int(l)));
  in.decode_s.assign(in.spec.chunks.size(), std::vector<double>(in.spec.levels.size(), 0.0));
  for (size_t c = 0; c < in.spec.chunks.size(); ++c) {
    for (size_t l = 0; l < in.spec.levels.size(); ++l) {
      const auto blob = reader.blob(uint32_t(c), m.levels[l].id);
      const auto h = codec::parse_blob_header(blob);
      const codec::LevelDecodeTables* tab =
          h.method == codec::Method::Quant && h.level < tables.size() ? &tables[h.level] : nullptr;
      std::vector<double> t;
      for (int r = 0; r < std::max(1, repeats); ++r) {
        KvCache tmp(profile.shape, profile.model_name, profile.rope_theta, false);
        tmp.resize(in.spec.chunks[c].tokens);
        const auto t0 = std::chrono::steady_clock::now();
        codec::decode_chunk(blob, &profile, tmp, tab, m.chunks[c].token_begin);
        t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      in.decode_s[c][l] = *std::min_element(t.begin(), t.end());
    }
  }
  // A chunk's decode time is its tokens x its level's per-token time: per-chunk differences of a
  // few tenths of a millisecond are the shared machine's noise, and on a fast link they decide
  // which fixed plan is fastest. Per level: the minimum of `repeats` decodes of each chunk (the
  // cost without interference), averaged over the chunks per token.
  for (size_t l = 0; l < in.spec.levels.size(); ++l) {
    double s = 0, tok = 0;
    for (size_t c = 0; c < in.spec.chunks.size(); ++c) s += in.decode_s[c][l], tok += in.spec.chunks[c].tokens;
    for (size_t c = 0; c < in.spec.chunks.size(); ++c) in.decode_s[c][l] = s / tok * in.spec.chunks[c].tokens;
  }
  return LoadedContext{m.context_id, std::move(reader), std::move(profile), pp, std::move(in)};
}

}  // namespace kvstream::streamer
