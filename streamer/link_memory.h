// What a receiver remembers between fetches (controller, issue 14): the last link estimate of
// each sender, with the wall-clock time it was stored (so the next fetch knows its age), as
// video players keep their last bandwidth estimate. One small JSON file:
//   {"links": {"<host>:<port>": {"mu": ln(bytes/s), "sigma": spread, "unix_s": seconds}}}
//
// Contract: load_link_memory() never throws: a missing, unreadable or malformed file, or no entry
// for the sender, gives an invalid LinkMemory (the fetch then starts from the prior). Entries
// with a non-finite or out-of-range number are ignored. store_link_memory() rewrites the file
// atomically (temporary + rename), keeping other senders' entries; it throws std::runtime_error
// when the file cannot be written.
#pragma once
#include <string>

#include "streamer/link_estimator.h"

namespace kvstream::streamer {

LinkMemory load_link_memory(const std::string& path, const std::string& sender, double now_unix_s);
void store_link_memory(const std::string& path, const std::string& sender, const LinkMemory& m, double now_unix_s);

}  // namespace kvstream::streamer
