#include "store/truncation.h"

#include <cmath>
#include <stdexcept>

#include "codec/rope.h"
#include "model/kv_quality.h"

namespace kvstream::store {

KvCache truncate_context(const KvCache& kv, size_t drop, bool keep_pre_rope) {
  if (!kv.keys_pre_rope)
    throw std::invalid_argument("truncate_context: keys must be stored before RoPE to move them");
  KvCache out = kv.slice(drop, kv.num_tokens());
  if (!keep_pre_rope) rope_apply_to_keys(out, 0);  // re-rotate at the new positions 0..
  return out;
}

nlohmann::json TruncationEvalResult::to_json() const {
  nlohmann::json j{{"contexts", contexts},       {"window", window}, {"context_tokens", context_tokens},
                   {"dropped_tokens", dropped}, {"kept_tokens", kept}, {"next_turn_tokens", next_tokens}};
  for (const auto& r : rows)
    j["methods"].push_back({{"method", r.method},
                            {"perplexity", r.ppl},
                            {"mean_abs_ppl_diff_vs_recompute", r.mean_abs_ppl_diff},
                            {"top1_agreement_vs_recompute", r.top1_agreement}});
  return j;
}

TruncationEvalResult truncation_eval(const model::Model& m, const model::Tokenizer& tok,
                                     const std::string& text, const TruncationEvalOptions& o) {
  const int window = m.config().seq_len;
  if (o.contexts <= 0 || o.context_tokens <= 1 || o.next_tokens <= 0)
    throw std::invalid_argument("truncation-eval: contexts, context and next-turn tokens must be positive");
  if (o.context_tokens + 1 + o.next_tokens <= window)
    throw std::invalid_argument("truncation-eval: context + next turn must overflow the " +
                                std::to_string(window) + "-token window");
  if (!(o.ratio > 0 && o.ratio < 1)) throw std::invalid_argument("truncation-eval: ratio in (0, 1)");
  const size_t drop = static_cast<size_t>(o.ratio * window);
  if (drop >= static_cast<size_t>(o.context_tokens))
    throw std::invalid_argument("truncation-eval: the context is shorter than what truncation drops");

  const auto ctxs = model::cut_contexts(tok, text, model::kEvalRange, o.contexts, o.context_tokens, o.next_tokens);
  const char* names[4] = {"truncate+re-RoPE (stored pre-RoPE keys)", "recompute kept text",
                          "naive truncation (post-RoPE keys at old positions)", "no truncation (positions past window)"};
  std::vector<double> sum_lp(4, 0), diff(4, 0), agree(4, 0);
  size_t count = 0;
  TruncationEvalResult res;
  res.window = window;
  res.dropped = drop;
  res.next_tokens = o.next_tokens;
  for (const auto& c : ctxs) {
    // KV of context[0, n-1); the scored turn is context.back() + continuation (run at position n-1-drop).
    const std::vector<int32_t> prefix(c.context.begin(), c.context.end() - 1);
    std::vector<int32_t> scored{c.context.back()};
    scored.insert(scored.end(), c.continuation.begin(), c.continuation.end());
    res.context_tokens = prefix.size();
    res.kept = prefix.size() - drop;

    KvCache pre = m.new_cache(/*pre_rope=*/true);
    m.recompute(pre, prefix);
    KvCache post = m.new_cache(false);
    m.recompute(post, prefix);

    const KvCache a = truncate_context(pre, drop);
    KvCache b = m.new_cache(false);
    m.recompute(b, std::span(prefix).subspan(drop));
    const KvCache naive = post.slice(drop, post.num_tokens());

    const model::ScoreResult s[4] = {m.score(a, scored), m.score(b, scored), m.score(naive, scored), m.score(post, scored)};
    for (int i = 0; i < 4; ++i) {
      sum_lp[i] += s[i].sum_logprob;
      diff[i] += std::fabs(s[i].perplexity - s[1].perplexity);
      agree[i] += model::top1_agreement(s[i], s[1]);
    }
    count += s[1].count();
    ++res.contexts;
  }
  for (int i = 0; i < 4; ++i)
    res.rows.push_back({names[i], std::exp(-sum_lp[i] / double(count)), diff[i] / res.contexts, agree[i] / res.contexts});
  return res;
}

}  // namespace kvstream::store
