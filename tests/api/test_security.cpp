// The public API behind authentication (docs/PROTOCOL.md, "Authentication, tenants and TLS"): a
// Server with a keys file and a keyed store, put() and Lookup with a tenant's store secret, and
// fetches that authenticate (or do not).
#include <catch2/catch.hpp>

#include <filesystem>

#include "kvstream/kvstream.h"
#include "streamer/auth.h"
#include "tests/api/fixture.h"
#include "tests/error_code.h"

using Fixture = kvstream::testing::ApiFixture;
using kvstream::testing::code_of;
namespace fs = std::filesystem;

namespace {

// Host rows of the fixture's KV cache as a contiguous fp32 layout (K/V vectors it points into).
struct Rows {
  std::vector<std::vector<float>> k, v;
  kvstream::KvLayout layout;
  explicit Rows(const kvstream::KvCache& kv) : k(kv.k), v(kv.v) {
    std::vector<void*> kp, vp;
    for (auto& t : k) kp.push_back(t.data());
    for (auto& t : v) vp.push_back(t.data());
    layout = kvstream::KvLayout::contiguous(kv.shape, kvstream::Dtype::F32, kp, vp, kv.num_tokens());
  }
};

}  // namespace

TEST_CASE("a server with a keys file serves a tenant its keyed store, and nobody without the key", "[api][security]") {
  const auto& fx = Fixture::get();
  const fs::path root = fs::temp_directory_path() / ("kvstream-api-sec-" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "serve" / "acme");
  fs::copy_file(fx.dir + "/story.kvprofile", root / "serve" / "acme" / "story.kvprofile");
  const std::string keys = (root / "keys").string(), secret = (root / "store.secret").string();
  kvstream::streamer::add_tenant(keys, "acme");
  kvstream::streamer::write_new_secret(secret);
  const std::string store = (root / "store").string();

  Rows src(fx.kv);
  const auto profile = kvstream::Profile::load(fx.dir + "/story.kvprofile");
  kvstream::PutOptions po;
  po.store_dir = store;
  po.tenant = "acme";
  po.store_secret_file = secret;
  const auto put = kvstream::put(profile, src.layout, fx.kv.tokens, po);
  CHECK(fs::is_directory(fs::path(store) / "acme"));  // the tenant's part of the store

  // The same tokens find the entry only with the tenant's secret.
  kvstream::LookupOptions lo{store, profile.model_name(), 64, "acme", secret};
  CHECK(kvstream::Lookup(lo).longest_prefix(fx.kv.tokens).context == put.context);
  kvstream::LookupOptions public_lo{(fs::path(store) / "acme").string(), profile.model_name(), 64, "", ""};
  CHECK(kvstream::Lookup(public_lo).longest_prefix(fx.kv.tokens).matched_tokens == 0);
  lo.store_secret_file.clear();
  CHECK(code_of([&] { kvstream::Lookup{lo}; }) == kvstream::ErrorCode::kInvalidArgument);

  kvstream::ServerOptions so;
  so.dir = (root / "serve").string();
  so.store_dir = store;
  so.model_name = profile.model_name();
  CHECK(code_of([&] { kvstream::Server{so}; }) == kvstream::ErrorCode::kAuth);  // neither keys nor insecure
  so.keys_file = keys;
  CHECK(code_of([&] { kvstream::Server{so}; }) == kvstream::ErrorCode::kInvalidArgument);  // a store needs its secret
  so.store_secret_file = secret;
  kvstream::Server server(so);
  server.start();
  CHECK(server.lookup(fx.kv.tokens, "acme").context == put.context);
  CHECK(code_of([&] { server.lookup(fx.kv.tokens, "mallory"); }) == kvstream::ErrorCode::kInvalidArgument);

  Rows dst(fx.kv);
  for (auto* t : {&dst.k, &dst.v})
    for (auto& layer : *t) std::fill(layer.begin(), layer.end(), 0.0f);
  kvstream::FetchOptions fo;
  fo.port = server.port();
  fo.context = put.context;
  fo.policy = "fixed:" + profile.level_names().front();  // a store entry holds the profile's levels
  fo.slo_ms = 10000;
  fo.stall_timeout_s = 2;
  SECTION("with the tenant's key the fetch completes") {
    fo.tenant = "acme";
    fo.keys_file = keys;
    const auto r = kvstream::fetch(fo, dst.layout);
    CHECK(r.complete);
    CHECK(r.tokens == fx.kv.num_tokens());
    CHECK(dst.k != std::vector<std::vector<float>>(dst.k.size(), std::vector<float>(dst.k[0].size(), 0.0f)));
  }
  SECTION("without a key the sender refuses it") {
    CHECK(code_of([&] { kvstream::fetch(fo, dst.layout); }) == kvstream::ErrorCode::kAuth);
  }
  SECTION("a tenant without its key file is an invalid option") {
    fo.tenant = "acme";
    CHECK(code_of([&] { kvstream::Transfer::start(fo, dst.layout); }) == kvstream::ErrorCode::kInvalidArgument);
  }
  server.stop();
  fs::remove_all(root);
}
