// Shared real-data fixture for the streamer tests: a 448-token TinyStories passage prefilled by
// stories260K, a small codec profile built from calibration text, and the passage's .kvs container
// (default ladder + baselines, 64-token chunks) written into a temporary directory as
// "story.kvs" + "story.kvprofile". Built once per test process; the profile (seconds to build,
// tens of seconds under ASan, and catch_discover_tests runs every case in a process of its own)
// once per test binary: see shared_profile(). Tests run with authentication on:
// the directory is tenant "test"'s (ROOT/test, served by a sender with --dir ROOT and the keys
// file ROOT/keys holding a fresh random key for "test"); `dir` alone can still be served
// insecurely.
#pragma once
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "codec/container.h"
#include "codec/profile.h"
#include "model/kv_quality.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "streamer/auth.h"
#include "tests/test_cache.h"
#include "tests/test_data.h"

#include <unistd.h>

namespace kvstream::testing {

struct StreamFixture {
  model::Model model;
  KvCache kv;  // the original prefill (post-RoPE)
  codec::Profile profile;
  std::string root;       // temporary serving root: ROOT/test/ and ROOT/keys
  std::string dir;        // ROOT/test: story.kvs and story.kvprofile
  std::string kvs_path;
  std::string tenant = "test";
  std::string keys_file;  // ROOT/keys (mode 600): "test <secret>"
  std::shared_ptr<const streamer::Keyring> keys;
  std::vector<uint8_t> key;  // tenant test's secret

  ~StreamFixture() {
    std::error_code ec;
    if (!root.empty()) std::filesystem::remove_all(root, ec);
  }
  static const StreamFixture& get() {
    static std::unique_ptr<StreamFixture> f = make();
    return *f;
  }

 private:
  explicit StreamFixture(model::Model m) : model(std::move(m)) {}
  static std::unique_ptr<StreamFixture> make() {
    auto f = std::unique_ptr<StreamFixture>(new StreamFixture(model::Model::load(model_path())));
    const auto tok = model::Tokenizer::load(tokenizer_path());
    const std::string text = model::read_text_file(text_path());
    model::ProfileOptions po;
    po.calibration_contexts = 8;
    po.selection_contexts = 8;
    po.context_tokens = 192;
    po.continuation_tokens = 32;
    po.threads = 2;
    f->profile = shared_profile("stream-fixture", [&] { return model::build_profile(f->model, tok, text, po); });
    const auto ctxs = model::cut_contexts(tok, text, model::kEvalRange, 1, 448, 16);
    f->kv = f->model.new_cache(false);
    f->model.recompute(f->kv, ctxs.at(0).context);
    auto ladder = codec::default_ladder(f->profile);
    codec::add_baselines(ladder);
    const auto bytes = codec::encode_container(f->kv, f->profile, ladder, 64);
    f->root = (std::filesystem::temp_directory_path() / ("kvstream-streamer-test-" + std::to_string(::getpid()))).string();
    std::filesystem::remove_all(f->root);
    f->dir = f->root + "/" + f->tenant;
    std::filesystem::create_directories(f->dir);
    f->keys_file = f->root + "/keys";
    streamer::add_tenant(f->keys_file, f->tenant);
    f->keys = std::make_shared<const streamer::Keyring>(streamer::Keyring::load(f->keys_file));
    f->key = *f->keys->find(f->tenant);
    f->kvs_path = f->dir + "/story.kvs";
    {
      std::ofstream o(f->kvs_path, std::ios::binary);
      o.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    }
    codec::save_profile(f->profile, f->dir + "/story.kvprofile");
    return f;
  }
};

}  // namespace kvstream::testing
