// The codec profiles a receiving node keeps in memory between fetches: parsed profiles and every
// level's decode tables, by hash (FNV-1a 64, lower-case hex), backed by a directory of
// <hash>.kvprofile files. A node (or a process running many receivers) shares one among its
// receive() calls (ReceiverOptions::profiles), so that no fetch loads, parses or builds tables for
// a profile the node has seen; without one, each receive() loads its profile_dir itself.
//
// Contract: thread-safe. The constructor loads every valid <hash>.kvprofile of `dir` (a file whose
// bytes do not match its name's hash is ignored) and builds its tables. add() keeps a profile
// fetched from a sender (bytes already checked against the hash) and writes it to the directory
// (temp file + rename, so that a concurrent reader never sees half a file); its tables are built
// by build_tables(), which a receiver calls after the fetch (off the TTFT path).
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "codec/profile.h"
#include "streamer/decode_pipeline.h"

namespace kvstream::streamer {

class ProfileCache {
 public:
  explicit ProfileCache(std::string dir = {});
  struct Entry {
    std::shared_ptr<const codec::Profile> profile;
    DecodePipeline::Tables tables;  // empty until built
  };
  std::optional<Entry> find(const std::string& hash) const;
  Entry add(const std::string& hash, codec::Profile profile, const std::vector<uint8_t>& bytes);
  void build_tables(const std::string& hash);
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;
};

}  // namespace kvstream::streamer
