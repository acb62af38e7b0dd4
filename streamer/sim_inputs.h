// Builds the simulator's inputs from a real .kvs container and its profile: the manifest the
// sender would send, and the true decode time of every (chunk, level), measured by decoding each
// blob on this machine: its tokens x the level's per-token time (the minimum of `repeats` decodes
// of each chunk, averaged over the chunks).
//
// Contract: the profile is `profile_path` if given, else the *.kvprofile beside the container whose
// hash the container names; throws std::runtime_error if none matches.
#pragma once
#include <string>

#include "codec/container.h"
#include "codec/profile.h"
#include "streamer/stream_sim.h"

namespace kvstream::streamer {

struct LoadedContext {
  std::string context_id;
  codec::ContainerReader reader;
  codec::Profile profile;
  std::string profile_path;
  SimInputs inputs;
};

// context id = the file stem (ctx.kvs -> "ctx").
LoadedContext load_context_for_sim(const std::string& kvs_path, const std::string& profile_path = {},
                                   int repeats = 7);
// The *.kvprofile in `dir` with this hash, or "" if none.
std::string find_profile(const std::string& dir, uint64_t hash);

}  // namespace kvstream::streamer
