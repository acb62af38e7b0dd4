// fuzz/trace_check.h: the body shared by the two trace targets (one per format, so that each
// has its own seed corpus): parse, then the capacity queries every user of a Trace makes, with
// the invariants netsim/trace.h states.
#pragma once
#include <string_view>

#include "fuzz/target.h"
#include "netsim/trace.h"

namespace kvstream::fuzz {

inline Outcome check_trace(Input input) {
  using namespace netsim;
  const std::string_view text(reinterpret_cast<const char*>(input.data()), input.size());
  return guard([&] {
    const Trace t = Trace::parse(text, 1.0, "fuzz");
    const TimeNs period = t.period_ns();
    KVSTREAM_FUZZ_CHECK(period > 0 && t.bytes_per_period() > 0);
    KVSTREAM_FUZZ_CHECK(t.cumulative_bytes(period) >= t.cumulative_bytes(period / 2));
    const TimeNs done = t.time_to_deliver(period / 3, 1'000'000);
    KVSTREAM_FUZZ_CHECK(done >= period / 3);
    // time_to_deliver counts opportunities at t0 itself: bytes in (t0 - 1, done].
    KVSTREAM_FUZZ_CHECK(t.bytes_deliverable(period / 3 - 1, done) >= 1'000'000);
    const TraceStats s = t.stats();
    KVSTREAM_FUZZ_CHECK(s.bins >= 1 && s.min_mbps <= s.max_mbps);
  });
}

}  // namespace kvstream::fuzz
