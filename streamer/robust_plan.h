// Robustness measures of plans, for the adaptive controller's insurance rule. Pure computation.
//
// A plan's "required rate" is the lowest constant link throughput (bytes/s) at which the
// pipeline model (plan.h) predicts it meets the deadline: the plan's TTFT falls as the rate
// rises, so every rate at or above it meets and every rate below misses. It condenses how much a
// plan bets on the link: the all-text plan needs only its few hundred bytes of token ids, so its
// required rate is tiny unless recompute alone misses (then it is +inf); a plan of large levels
// needs a fast link. Comparing required rates is how the controller keeps its promise to never
// do worse than a fixed plan: a step is "insured" when, after it, some continuation still meets
// the deadline at a rate the fixed plans would need anyway.
//
// Contract: `ttft_at(rate)` is any callable returning the predicted TTFT (seconds) of a fixed
// plan at a constant rate; required_rate() bisects it in log space over [kMinRate, kMaxRate]
// (returns 0 when even kMinRate meets, +inf when kMaxRate misses). O(iterations) calls.
#pragma once
#include <cstddef>
#include <functional>
#include <vector>

#include "streamer/plan.h"

namespace kvstream::streamer {

inline constexpr double kMinRate = 100.0;   // bytes/s (0.8 kbit/s)
inline constexpr double kMaxRate = 1.25e11; // bytes/s (1 Tbit/s)

double required_rate(const std::function<double(double rate)>& ttft_at, double deadline, int iterations = 24);

// Options worth considering for a context: every level not dominated by another (one with no
// more bytes in every chunk, no lower agreement, and a decode cost within 5 % or 20 us per chunk
// of its own or less), plus text when allowed. Ordered by agreement, best first.
std::vector<int> pareto_options(const StreamSpec& s, const CostModel& c, bool allow_text);

}  // namespace kvstream::streamer
