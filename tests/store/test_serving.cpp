// The store serving the sender, and the receiver's save-back: a context fetched over loopback is
// saved back into a store directory, a sender serving that directory picks the entry up by its
// prefix key (written by "another process": the sender's store was opened before it existed), and
// a second receiver fetches it again. Corrupt or unknown entries are never served. The sender
// authenticates (tenant "test" of the fixture): the tenant's store is STORE/test, keyed under a
// deployment secret (store/key.h).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "codec/rope.h"
#include "store/save_back.h"
#include "store/store_source.h"
#include "streamer/receiver.h"
#include "streamer/sender.h"
#include "tests/streamer/fixture.h"

using namespace kvstream;
using kvstream::testing::StreamFixture;

namespace {

std::string fresh_dir(const std::string& tag) {
  const auto p = std::filesystem::temp_directory_path() / ("kvstream-serving-" + tag + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  return p.string();
}

const std::vector<uint8_t> kDeployment(32, 0x11);  // the deployment secret of these tests' stores

// Tenant test's store in STORE (STORE/test), as `kvstream send --store STORE --store-secret-file`.
store::StoreConfig tenant_store(const std::string& store_dir, const std::vector<uint8_t>& deployment = kDeployment) {
  store::StoreConfig sc;
  sc.dir = store_dir;
  sc.mem_bytes = 4 << 20;
  sc.disk_bytes = 16 << 20;
  return store::tenant_store_config(sc, StreamFixture::get().tenant, deployment);
}

// What `recv --save-back STORE --tenant test --store-secret-file` writes.
store::SaveBackOptions save_options(const std::string& store_dir) {
  const auto sc = tenant_store(store_dir);
  store::SaveBackOptions sb;
  sb.dir = sc.dir;
  sb.secret = sc.secret;
  sb.disk_bytes = 16 << 20;
  return sb;
}

struct StoreSender {
  explicit StoreSender(const std::string& store_dir) {
    source = std::make_shared<store::StoreContextSource>(tenant_store(store_dir),
                                                         std::make_shared<streamer::ContextDir>(StreamFixture::get().dir));
    streamer::SenderOptions so;
    so.keys = StreamFixture::get().keys;
    so.tenant_source = [src = source](const std::string& tenant) -> std::shared_ptr<streamer::ContextSource> {
      return tenant == StreamFixture::get().tenant ? src : nullptr;
    };
    sender = std::make_unique<streamer::Sender>(so);
    sender->start();
  }
  std::shared_ptr<store::StoreContextSource> source;
  std::unique_ptr<streamer::Sender> sender;
};

streamer::ReceiveOutcome fetch(uint16_t port, const std::string& context, const std::string& policy,
                               const std::string& profile_dir) {
  streamer::ReceiverOptions ro;
  ro.port = port;
  ro.context = context;
  ro.slo_s = 10;
  ro.policy = streamer::parse_policy(policy);
  ro.model = &StreamFixture::get().model;
  ro.profile_dir = profile_dir;
  ro.stall_timeout_s = 2;
  ro.total_timeout_s = 30;
  ro.tenant = StreamFixture::get().tenant;
  ro.key = StreamFixture::get().key;
  return streamer::receive(ro);
}

float max_abs_diff(const KvCache& a, const KvCache& b) {
  float m = 0;
  for (int l = 0; l < a.shape.n_layers; ++l)
    for (size_t i = 0; i < a.k[size_t(l)].size(); ++i) {
      m = std::max(m, std::abs(a.k[size_t(l)][i] - b.k[size_t(l)][i]));
      m = std::max(m, std::abs(a.v[size_t(l)][i] - b.v[size_t(l)][i]));
    }
  return m;
}

}  // namespace

TEST_CASE("a saved-back context is served from the store by its key", "[store][serving]") {
  const auto& fx = StreamFixture::get();
  const std::string store_dir = fresh_dir("roundtrip"), profiles = fresh_dir("roundtrip-prof");
  StoreSender s(store_dir);  // opened before the entry exists
  REQUIRE(s.source->store().stats().disk_entries == 0);

  // Turn 1: fetch the file-served context as text (exact recompute), then save it back.
  const auto first = fetch(s.sender->port(), "story", "text", profiles);
  REQUIRE(first.kv.tokens == fx.kv.tokens);
  REQUIRE(first.profile);
  const auto sb = save_options(store_dir);
  const auto saved = store::save_back(first.kv, *first.profile, sb);
  REQUIRE(saved.tokens == fx.kv.num_tokens());
  REQUIRE(saved.stored_bytes > 0);
  REQUIRE(std::filesystem::exists(sb.dir + "/" + saved.key.hex() + ".kvrec"));
  REQUIRE(store::StoreContextSource::is_key_id(saved.key.hex()));

  // Turn 2: the running sender serves it by key, at any level, with the context's token ids.
  const auto exact = fetch(s.sender->port(), saved.key.hex(), "text", profiles);
  REQUIRE(exact.kv.tokens == fx.kv.tokens);
  REQUIRE(max_abs_diff(exact.kv, first.kv) == 0.0f);  // text: recomputed from the stored text
  const auto lossy = fetch(s.sender->port(), saved.key.hex(), "fixed:max", profiles);
  REQUIRE(lossy.kv.tokens == fx.kv.tokens);
  REQUIRE(lossy.result.plan.find("text") == std::string::npos);
  // At the best level the re-encoded cache is lossy but keeps the model's behaviour: measured
  // against the original prefill, as `recv --reference` does.
  REQUIRE(max_abs_diff(lossy.kv, first.kv) > 0.0f);
  double agreement = 0, ppl_delta_pct = 0;
  streamer::measure_quality(fx.model, fx.kv, lossy.kv, 1, 32, agreement, ppl_delta_pct);
  INFO("top-1 " << agreement << " ppl delta " << ppl_delta_pct << "%");
  REQUIRE(agreement >= 0.9);
  REQUIRE(std::abs(ppl_delta_pct) < 2.0);
  const auto st = s.source->store().stats();
  REQUIRE(st.adopted == 1);
  REQUIRE(st.hits_mem + st.hits_disk >= 2);

  // Served from memory now (tiers are exclusive): stopping the sender persists it again.
  s.sender->stop();
  s.sender.reset();
  s.source.reset();
  REQUIRE(std::filesystem::exists(sb.dir + "/" + saved.key.hex() + ".kvrec"));
  std::filesystem::remove_all(store_dir);
  std::filesystem::remove_all(profiles);
}

TEST_CASE("a corrupt or unknown store entry is never served", "[store][serving][failure]") {
  const auto& fx = StreamFixture::get();
  const std::string store_dir = fresh_dir("corrupt"), profiles = fresh_dir("corrupt-prof");
  const auto sb = save_options(store_dir);
  KvCache kv = fx.kv;
  const auto saved = store::save_back(kv, fx.profile, sb);
  const std::string path = sb.dir + "/" + saved.key.hex() + ".kvrec";
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(std::streamoff(std::filesystem::file_size(path) / 2));
    const char bad = 0x5A;
    f.write(&bad, 1);
  }
  StoreSender s(store_dir);
  REQUIRE_THROWS_WITH(fetch(s.sender->port(), saved.key.hex(), "text", profiles), Catch::Contains("unknown context"));
  REQUIRE_FALSE(std::filesystem::exists(path));  // detected and dropped
  REQUIRE_THROWS_WITH(fetch(s.sender->port(), std::string(32, 'a'), "text", profiles), Catch::Contains("unknown context"));
  // ids that are not keys still reach the directory
  REQUIRE(fetch(s.sender->port(), "story", "fixed:max", profiles).kv.tokens == fx.kv.tokens);
  s.sender->stop();
  std::filesystem::remove_all(store_dir);
  std::filesystem::remove_all(profiles);
}

TEST_CASE("save-back rejects an empty cache or another model's shape", "[store][serving][failure]") {
  const auto& fx = StreamFixture::get();
  store::SaveBackOptions sb;
  sb.dir = fresh_dir("reject");
  KvCache empty = fx.kv.slice(0, 0);
  REQUIRE_THROWS_WITH(store::save_back(empty, fx.profile, sb), Catch::Contains("empty"));
  KvShape other = fx.kv.shape;
  other.n_layers += 1;
  KvCache wrong(other, fx.kv.model_name, fx.kv.rope_theta, false);
  wrong.resize(8);
  REQUIRE_THROWS_WITH(store::save_back(wrong, fx.profile, sb), Catch::Contains("shape"));
  std::filesystem::remove_all(sb.dir);
}

TEST_CASE("finding 6: the store source parses an entry once, and finding 3: keys need the deployment secret and tenant",
          "[store][serving][hardening]") {
  const auto& fx = StreamFixture::get();
  const std::string store_dir = fresh_dir("keyed");
  KvCache kv = fx.kv;
  const auto saved = store::save_back(kv, fx.profile, save_options(store_dir));
  const std::string id = saved.key.hex();
  {
    store::StoreContextSource src(tenant_store(store_dir), std::make_shared<streamer::ContextDir>(fx.dir));
    const auto a = src.context(id);
    const auto b = src.context(id);
    REQUIRE(a);
    REQUIRE(a == b);  // one parse, shared (a version-2 source parsed a copy per request)
    REQUIRE(src.store().stats().hits_mem + src.store().stats().hits_disk == 2);  // each still counts as use
  }
  // The key is not the public hash of the tokens, and differs per tenant and per deployment.
  CHECK(saved.key != store::PrefixHasher(64, fx.kv.model_name).key_of(fx.kv.tokens));
  const auto other_tenant = store::tenant_store_config(tenant_store(store_dir), "other", kDeployment);
  CHECK(store::PrefixHasher(64, fx.kv.model_name, other_tenant.secret).key_of(fx.kv.tokens) != saved.key);
  CHECK(store::PrefixHasher(64, fx.kv.model_name, tenant_store(store_dir).secret).key_of(fx.kv.tokens) == saved.key);
  // A store opened under another deployment secret does not adopt the entry.
  store::StoreContextSource wrong(tenant_store(store_dir, std::vector<uint8_t>(32, 0x22)),
                                  std::make_shared<streamer::ContextDir>(fx.dir));
  REQUIRE(wrong.store().stats().recovered == 0);
  REQUIRE(wrong.context(id) == nullptr);
  std::filesystem::remove_all(store_dir);
}
