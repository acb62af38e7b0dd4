// Real-data fixture of the public API tests, cheap enough to build once per test process: a
// 448-token TinyStories passage prefilled by stories260K, a model-free profile (codec/kv_profile.h)
// from another passage's KV, and the passage's container (profile levels + fp16/q8/q4/zstd-fp16 +
// text, 64-token chunks) written as "story.kvs" + "story.kvprofile" into a temporary directory.
#pragma once
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <unistd.h>

#include "codec/container.h"
#include "codec/kv_profile.h"
#include "model/kv_quality.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "tests/test_data.h"

namespace kvstream::testing {

struct ApiFixture {
  KvCache kv;  // the passage's prefill (post-RoPE)
  codec::Profile profile;
  std::string dir, kvs_path;

  ~ApiFixture() {
    std::error_code ec;
    if (!dir.empty()) std::filesystem::remove_all(dir, ec);
  }
  static const ApiFixture& get() {
    static std::unique_ptr<ApiFixture> f = make();
    return *f;
  }

 private:
  static std::unique_ptr<ApiFixture> make() {
    auto f = std::make_unique<ApiFixture>();
    const auto m = model::Model::load(model_path());
    const auto tok = model::Tokenizer::load(tokenizer_path());
    const std::string text = model::read_text_file(text_path());
    const auto calib = model::cut_contexts(tok, text, model::kCalibrationRange, 1, 320, 1).at(0);
    KvCache ckv = m.new_cache(false);
    m.recompute(ckv, calib.context);
    codec::KvProfileOptions po;
    po.threads = 2;
    f->profile = codec::build_kv_profile({ckv}, po);
    const auto ctx = model::cut_contexts(tok, text, model::kEvalRange, 1, 448, 16).at(0);
    f->kv = m.new_cache(false);
    m.recompute(f->kv, ctx.context);
    auto ladder = codec::default_ladder(f->profile);
    codec::add_baselines(ladder);
    const auto bytes = codec::encode_container(f->kv, f->profile, ladder, 64);
    f->dir = (std::filesystem::temp_directory_path() / ("kvstream-api-test-" + std::to_string(::getpid()))).string();
    std::filesystem::create_directories(f->dir);
    f->kvs_path = f->dir + "/story.kvs";
    std::ofstream(f->kvs_path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                       std::streamsize(bytes.size()));
    codec::save_profile(f->profile, f->dir + "/story.kvprofile");
    return f;
  }
};

}  // namespace kvstream::testing
