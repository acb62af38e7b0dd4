// Fuzz target trace_cooked: a Pensieve "cooked" trace file (netsim/trace.h: "time_s Mbps" per
// line) parsed by Trace::parse(), then the queries the link model and `netsim stats` make.
// Input: the file. (trace_mahimahi runs the same code on Mahimahi-format seeds.)
#include "fuzz/trace_check.h"

KVSTREAM_FUZZ_TARGET(trace_cooked) { return kvstream::fuzz::check_trace(input); }
