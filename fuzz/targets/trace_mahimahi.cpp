// Fuzz target trace_mahimahi: a Mahimahi trace file (netsim/trace.h: one millisecond timestamp
// per line) parsed by Trace::parse(), then the queries the link model and `netsim stats` make.
// Input: the file. (trace_cooked runs the same code on cooked-format seeds.)
#include "fuzz/trace_check.h"

KVSTREAM_FUZZ_TARGET(trace_mahimahi) { return kvstream::fuzz::check_trace(input); }
