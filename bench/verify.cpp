// Bit-exact verification of a fetch against its plan (see verify.h).
#include "bench/verify.h"

namespace kvstream::streamer::bench {

namespace {

bool rows_equal(const KvCache& a, size_t a0, const KvCache& b, size_t b0, size_t n) {
  const size_t kd = size_t(a.shape.kv_dim());
  for (int l = 0; l < a.shape.n_layers; ++l)
    for (size_t i = 0; i < n * kd; ++i)
      if (a.k[size_t(l)][a0 * kd + i] != b.k[size_t(l)][b0 * kd + i] ||
          a.v[size_t(l)][a0 * kd + i] != b.v[size_t(l)][b0 * kd + i])
        return false;
  return true;
}

// What served chunk `rec` while the fetch ran: a hedge's KV level when the hedge won, text for a
// fallback or a rescue, else the level the controller chose. An upgrade replaces it only at the end.
std::string base_level(const ChunkRecord& rec) {
  if (rec.served_by == "hedge") return rec.served_level;
  if (rec.fallback == "text" || rec.served_by == "rescue") return "text";
  return rec.level;
}

}  // namespace

std::string verify_fetch(const ReceiveOutcome& out, const codec::ContainerReader& r, const codec::Profile& profile,
                         const model::Model* model) {
  const auto& info = r.info();
  if (out.kv.num_tokens() != info.num_tokens) return "token count differs";
  if (out.result.chunks.size() != info.num_chunks) return "chunk count differs";
  if (!(out.kv.shape == profile.shape)) return "shape differs";
  // The cache as it stood before the upgrades: text chunks were recomputed on it.
  KvCache base = out.kv.slice(0, 0);
  for (uint32_t c = 0; c < info.num_chunks; ++c) {
    const auto& rec = out.result.chunks[c];
    const size_t b = info.chunk_begin(c), n = info.chunk_end(c) - b;
    const auto ids = r.tokens(c);
    for (size_t t = 0; t < n; ++t)
      if (out.kv.tokens[b + t] != ids[t]) return "chunk " + std::to_string(c) + ": token ids differ";
    const std::string held = base_level(rec);
    if (held == "text") {
      if (!model) return "chunk " + std::to_string(c) + " is text but there is no model to check it";
      model->recompute(base, ids);
    } else {
      base.append(codec::decode_container(r, &profile, info.level_index(held), c, c + 1, false, 1));
    }
    if (rec.served_by == "upgrade") {
      const KvCache up = codec::decode_container(r, &profile, info.level_index(rec.served_level), c, c + 1, false, 1);
      if (!rows_equal(up, 0, out.kv, b, n))
        return "chunk " + std::to_string(c) + " (upgraded to " + rec.served_level + ") differs from its decode";
    } else if (!rows_equal(base, b, out.kv, b, n)) {
      return "chunk " + std::to_string(c) + " (" + held + ") differs from its " +
             (held == "text" ? "recompute" : "decode");
    }
  }
  return "";
}

}  // namespace kvstream::streamer::bench
