// StreamResult JSON (see result.h).
#include "streamer/result.h"

#include <algorithm>

namespace kvstream::streamer {

nlohmann::json StreamResult::to_json() const {
  nlohmann::json j;
  j["context"] = context;
  j["policy"] = policy;
  j["slo_ms"] = slo_ms;
  j["ttft_ms"] = ttft_ms;
  j["slo_met"] = slo_met;
  j["bytes"] = bytes;
  j["last_byte_ms"] = last_byte_ms;
  j["quality"] = {{"greedy_agreement", greedy_agreement},
                  {"ppl_delta_pct", ppl_delta_pct},
                  {"source", quality_source}};
  j["chunks"] = nlohmann::json::array();
  for (const auto& c : chunks) {
    j["chunks"].push_back({{"index", c.index},
                           {"level", c.level},
                           {"bytes", c.bytes},
                           {"request_ms", c.request_ms},
                           {"start_ms", c.start_ms},
                           {"end_ms", c.end_ms},
                           {"throughput_mbps", c.throughput_mbps},
                           {"decode_ms", c.decode_ms},
                           {"ready_ms", c.ready_ms},
                           {"est_mbps", c.est_mbps}});
    if (!c.served_by.empty()) j["chunks"].back()["served_by"] = c.served_by;
    if (!c.served_level.empty()) j["chunks"].back()["served_level"] = c.served_level;
    if (!c.rule.empty()) {
      j["chunks"].back()["rule"] = c.rule;
      j["chunks"].back()["lo_mbps"] = c.lo_mbps;
    }
    if (!c.fallback.empty()) {
      auto& jc = j["chunks"].back();
      jc["fallback"] = c.fallback;
      jc["fallback_reason"] = c.fallback_reason;
      jc["fallback_bytes"] = c.fallback_bytes;
    }
  }
  j["plan"] = plan;
  j["first_token_ms"] = first_token_ms;
  if (predicted_ttft_ms >= 0) j["predicted_ttft_ms"] = predicted_ttft_ms;
  if (first_token >= 0) j["first_token"] = first_token;
  if (!trace.empty()) j["trace"] = trace;
  if (!estimate_sources.empty()) j["estimate_sources"] = estimate_sources;
  return j;
}

void fill_chunks(StreamResult& r, const Controller& ctl, const std::vector<double>& busy_s,
                 const std::vector<double>& ready_s) {
  const auto& spec = ctl.spec();
  const auto& facts = ctl.facts();
  const auto& decs = ctl.decisions();
  r.chunks.clear();
  for (size_t i = 0; i < decs.size(); ++i) {
    const auto& f = facts[i];
    ChunkRecord c;
    c.index = i;
    c.option = decs[i].option;
    c.level = c.option == kText ? std::string("text") : spec.levels[size_t(c.option)].name;
    c.bytes = decs[i].bytes;
    c.request_ms = f.request_t * 1e3;
    c.start_ms = f.first_byte_t * 1e3;
    c.end_ms = f.last_byte_t * 1e3;
    c.throughput_mbps = f.throughput_bps * 8e-6;
    c.decode_ms = i < busy_s.size() ? busy_s[i] * 1e3 : 0;
    c.ready_ms = i < ready_s.size() ? ready_s[i] * 1e3 : 0;
    c.est_mbps = decs[i].est_mbps;
    c.lo_mbps = decs[i].lo_mbps;
    c.rule = decs[i].rule;
    r.chunks.push_back(c);
  }
}

void ladder_quality(const StreamSpec& spec, const std::vector<int>& options, double& agreement,
                    double& ppl_delta_pct) {
  double tok = 0, a = 0, p = 0;
  for (size_t i = 0; i < options.size() && i < spec.chunks.size(); ++i) {
    const double t = spec.chunks[i].tokens;
    tok += t;
    a += t * option_agreement(spec, options[i]);
    p += t * option_ppl_delta(spec, options[i]);
  }
  agreement = tok > 0 ? a / tok : 0;
  ppl_delta_pct = tok > 0 ? p / tok : 0;
}

}  // namespace kvstream::streamer
