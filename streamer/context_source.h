// The thin adapter between the codec's .kvs container / profile files and the streamer: builds the
// wire Manifest and the controller's StreamSpec from a container, and finds contexts and profiles
// for the sender. ContextSource is what the sender serves from; ContextDir serves a directory (the
// store layer adds a source that serves its entries, store/store_source.h).
//
// Contract: a context id `ctx` is served from DIR/ctx.kvs; profiles are DIR/*.kvprofile, matched by
// their hash (FNV-1a 64, lower-case hex). Manifest level ids are ladder indices; the ladder's text
// level becomes the manifest's text size (wire level kTextLevel), and the text blobs give the
// manifest's token ids (a context over kMaxManifestTokens tokens is refused). A level's quality is the ladder's
// measured greedy agreement and ppl delta; a level that was never measured (contexts == 0) is
// reported with agreement 0 so that the controller never prefers it blindly (say so in --json via
// the manifest: the level name is kept). ContextDir is thread-safe and parses a container on every
// context() call: the sender puts it behind its shared, byte-bounded cache (context_cache.h).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "codec/container.h"
#include "codec/profile.h"
#include "streamer/plan.h"
#include "streamer/wire.h"

namespace kvstream::streamer {

std::string hash_hex(uint64_t h);

// A context the sender serves: its manifest (built once) and its blobs, one per (chunk, ladder
// level). Implementations are immutable after construction and thread-safe; blob() may block
// (disk, network) and is never to be called on an I/O thread that serves other connections.
class ServedContext {
 public:
  ServedContext(std::string id, Manifest manifest, int text_level)
      : id_(std::move(id)), manifest_(std::move(manifest)), text_level_(text_level) {}
  virtual ~ServedContext() = default;
  const std::string& id() const { return id_; }
  const Manifest& manifest() const { return manifest_; }
  int text_level() const { return text_level_; }  // ladder index of the text level (-1: none)
  // Bytes this context keeps in memory (what a cache of contexts charges for it). The default is
  // the manifest's own size, for contexts whose blobs live elsewhere (disk, Redis).
  virtual uint64_t resident_bytes() const;
  // The blob of (chunk, ladder level), verified (CRC) by the implementation; throws
  // std::runtime_error (or codec::CorruptBlob) when it cannot be read or fails its check.
  virtual std::shared_ptr<const std::vector<uint8_t>> blob(uint32_t chunk, int ladder_level) const = 0;

 private:
  std::string id_;
  Manifest manifest_;
  int text_level_ = -1;
};

// A served context whose blobs come from a parsed .kvs container held in memory.
class ContainerContext final : public ServedContext {
 public:
  ContainerContext(std::string id, codec::ContainerReader reader, Manifest manifest, int text_level)
      : ServedContext(std::move(id), std::move(manifest), text_level), reader_(std::move(reader)) {}
  std::shared_ptr<const std::vector<uint8_t>> blob(uint32_t chunk, int ladder_level) const override;
  uint64_t resident_bytes() const override;
  const codec::ContainerReader& reader() const { return reader_; }

 private:
  codec::ContainerReader reader_;
};

// Manifest of a container (profile_bytes = size of the profile file, 0 if unknown).
Manifest manifest_from_container(const std::string& id, const codec::ContainerReader& r, uint64_t profile_bytes);
// The controller's view of a manifest.
StreamSpec spec_from_manifest(const Manifest& m);
// Ladder index of a wire level for a context (kTextLevel -> text level); -1 if invalid.
int ladder_index_of(const ServedContext& c, uint16_t wire_level);

// A served context built from a parsed container (profile_bytes as in manifest_from_container).
std::shared_ptr<const ServedContext> make_served_context(const std::string& id, codec::ContainerReader reader,
                                                         uint64_t profile_bytes);

// What the sender serves. Implementations are thread-safe (one sender thread calls them for every
// connection, and tests may call them from others).
class ContextSource {
 public:
  virtual ~ContextSource() = default;
  // The context with this id, or nullptr if there is none. Throws std::runtime_error if it exists
  // but cannot be served (not a valid container).
  virtual std::shared_ptr<const ServedContext> context(const std::string& id) = 0;
  // The bytes of the profile with this hash, or nullopt.
  virtual std::optional<std::vector<uint8_t>> profile_bytes(const std::string& hash_hex) = 0;
  // Whether a cache in front of this source may answer for it (false: every request must reach
  // the source, e.g. a store that counts serving as use for its eviction policy).
  virtual bool cacheable() const { return true; }
};

class ContextDir : public ContextSource {
 public:
  explicit ContextDir(std::string dir);
  // The context, loaded and parsed; nullptr if DIR/id.kvs does not exist. Throws
  // std::runtime_error if the file exists but is not a valid container.
  std::shared_ptr<const ServedContext> context(const std::string& id) override;
  std::optional<std::vector<uint8_t>> profile_bytes(const std::string& hash_hex) override;
  // Size of the profile file with this hash (0 if there is none).
  uint64_t profile_size(const std::string& hash_hex);
  // The distinct model names of the directory's profiles.
  std::vector<std::string> model_names();
  const std::string& dir() const { return dir_; }

 private:
  void scan_profiles();
  uint64_t profile_size_locked(const std::string& hash_hex);
  std::string dir_;
  std::mutex mu_;
  std::map<std::string, std::string> profiles_;  // hash -> path
  std::map<std::string, std::string> models_;    // hash -> model name
};

}  // namespace kvstream::streamer
