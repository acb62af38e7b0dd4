// Issue 13's findings, each reproduced against a real sender or receiver over loopback (they failed
// before protocol version 3): 1 headers that made the sender allocate, 2 slow, silent and
// repeating clients that were never dropped, 3 no authentication or isolation, 6 blocking work on
// the I/O thread, 7 a receiver that trusted the sender's lengths. Also TLS. Waits on the sender
// are liveness bounds (generous deadlines), not timings.
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "codec/container.h"
#include "streamer/auth.h"
#include "streamer/context_source.h"
#include "streamer/receiver.h"
#include "streamer/sender.h"
#include "streamer/wire.h"
#include "tests/cli/shell.h"
#include "tests/streamer/fixture.h"
#include "tests/error_code.h"
#include "tests/streamer/raw_client.h"

using namespace kvstream;
using namespace kvstream::streamer;
using kvstream::testing::code_of;
using kvstream::testing::FakeSender;
using kvstream::testing::RawClient;
using kvstream::testing::StreamFixture;

namespace {

uint64_t status_bytes(const std::string& field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(field, 0) == 0) return std::stoull(line.substr(field.size())) * 1024;
  return 0;
}
uint64_t rss_bytes() { return status_bytes("VmRSS:"); }
// The process's peak RSS since the last reset_peak_rss() (Linux: clear_refs 5 resets VmHWM), so
// that an allocation freed again before the check still counts.
void reset_peak_rss() { std::ofstream("/proc/self/clear_refs") << "5"; }
uint64_t peak_rss_bytes() { return status_bytes("VmHWM:"); }

// Waits (up to `limit`) for `cond`; returns whether it held.
template <class F>
bool eventually(F cond, std::chrono::seconds limit = std::chrono::seconds(20)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return cond();
}

std::string temp_dir(const std::string& tag) {
  const auto p = std::filesystem::temp_directory_path() / ("kvstream-hardening-" + tag + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

// A bare frame header claiming `len` payload bytes (the CRC is never reached).
std::vector<uint8_t> header(FrameType t, uint32_t len) {
  std::vector<uint8_t> h = {'K', 'V', 'S', 'P', uint8_t(kProtocolVersion), 0, uint8_t(t), 0};
  for (int i = 0; i < 4; ++i) h.push_back(uint8_t(len >> (8 * i)));
  for (int i = 0; i < 4; ++i) h.push_back(0);
  return h;
}

// A sender of the fixture's root with authentication on (tenant "test").
SenderOptions auth_sender() {
  SenderOptions so;
  so.dir = StreamFixture::get().root;
  so.keys = StreamFixture::get().keys;
  return so;
}

ReceiverOptions receiver(uint16_t port, const std::string& policy = "fixed:q8") {
  const auto& fx = StreamFixture::get();
  ReceiverOptions ro;
  ro.port = port;
  ro.context = "story";
  ro.slo_s = 10;
  ro.policy = parse_policy(policy);
  ro.model = &fx.model;
  ro.stall_timeout_s = 5;
  ro.total_timeout_s = 30;
  ro.tenant = fx.tenant;
  ro.key = fx.key;
  return ro;
}

std::vector<uint8_t> file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

uint16_t level_id(const std::string& name) {
  return uint16_t(codec::ContainerReader::open(StreamFixture::get().kvs_path).info().level_index(name));
}

}  // namespace

TEST_CASE("finding 1: frame headers make the sender allocate nothing, and sender frames from a receiver are refused",
          "[hardening][finding1]") {
  const std::string root = temp_dir("f1");
  auto keys = std::make_shared<Keyring>();
  keys->add("t", Secret(32, 7));
  SenderOptions so;
  so.dir = root;
  so.keys = keys;
  so.handshake_timeout_s = 1;
  Sender s(so);
  s.start();
  const uint64_t before = rss_bytes();
  reset_peak_rss();
  // 8 x 64 MiB CHUNK_DATA + 8 x 64 MiB PROFILE + 8 x 4 MiB MANIFEST headers (a version-2 sender
  // zero-filled a payload buffer of each claimed length), and 8 REQUEST headers of 1 KiB whose
  // payload never comes.
  std::vector<std::unique_ptr<RawClient>> refused, partial;
  for (int i = 0; i < 8; ++i)
    for (auto [t, len] : {std::pair{FrameType::kChunkData, 64u << 20}, std::pair{FrameType::kProfile, 64u << 20},
                          std::pair{FrameType::kManifest, 4u << 20}}) {
      refused.push_back(std::make_unique<RawClient>(s.port(), 10, 0, Peer::kSender));
      refused.back()->send(header(t, len - 1));
    }
  for (int i = 0; i < 8; ++i) {
    partial.push_back(std::make_unique<RawClient>(s.port(), 10, 0, Peer::kSender));
    partial.back()->send(header(FrameType::kRequest, 1024));
  }
  for (auto& c : refused) {
    const auto e = c->first_error();
    REQUIRE(e);
    REQUIRE(e->code == WireErrorCode::kBadFrame);
    REQUIRE_THAT(e->message, Catch::Contains("a receiver may not send"));
  }
  REQUIRE(peak_rss_bytes() < before + (32u << 20));
  // The partial frames are held in the connection's fixed 4 KiB buffer until the handshake
  // timeout closes them.
  for (auto& c : partial) REQUIRE(c->closed_by_peer());
  REQUIRE(s.stats().handshake_timeouts == 8);
  REQUIRE(eventually([&] { return s.stats().active == 0; }));
  std::filesystem::remove_all(root);
}

TEST_CASE("finding 2: receivers that stop reading, stay silent or repeat HELLO are dropped", "[hardening][finding2]") {
  const auto& fx = StreamFixture::get();
  SECTION("a receiver that requests and never reads is disconnected after the write timeout, its queue freed") {
    auto so = auth_sender();
    so.write_timeout_s = 0.5;
    if (std::getenv("KVSTREAM_TEST_LOG")) so.log = [](const std::string& l) { std::fprintf(stderr, "%s\n", l.c_str()); };
    Sender s(so);
    s.start();
    RawClient hog(s.port(), 10, 4096);
    hog.authenticate(fx.tenant, fx.key);
    std::vector<uint8_t> req = encode(Request{"story", 100, "hog"});
    const uint16_t fp16 = level_id("fp16");  // the largest blobs
    for (int rep = 0; rep < 100; ++rep)
      for (uint32_t c = 0; c < 7; ++c) {
        const auto g = encode(ChunkGet{c, fp16});
        req.insert(req.end(), g.begin(), g.end());
      }
    hog.send(req);
    REQUIRE(eventually([&] { return s.stats().write_timeouts == 1 && s.stats().active == 0; }));
    REQUIRE(s.stats().queued_bytes == 0);
    REQUIRE(s.stats().peak_queued_bytes <= so.max_queued_bytes + (1u << 20));
    REQUIRE(hog.closed_by_peer());
  }
  SECTION("a tenant whose receivers never read cannot starve another tenant of the memory budget") {
    // Tenants "test" and "hog" serve the same context. Eight hog connections request 700 fp16
    // chunks each and never read: without a tenant share they fill the 4 MiB global budget and the
    // honest receiver's CHUNK_GETs wait for memory until it gives up (stall timeout 5 s, while
    // the hogs' write timeout is 60 s).
    const std::string root = temp_dir("f2-tenants");
    for (const char* t : {"test", "hog"}) std::filesystem::copy(fx.dir, root + "/" + t);
    auto keys = std::make_shared<Keyring>();
    keys->add(fx.tenant, fx.key);
    const Secret hog_key(32, 9);
    keys->add("hog", hog_key);
    SenderOptions so;
    so.dir = root;
    so.keys = keys;
    so.max_queued_bytes = 1u << 20;
    so.memory_budget_bytes = 4u << 20;  // a tenant's share: 1 MiB (a quarter, the default)
    so.write_timeout_s = 60;
    Sender s(so);
    s.start();
    std::vector<std::unique_ptr<RawClient>> hogs;
    const uint16_t fp16 = level_id("fp16");
    for (int h = 0; h < 8; ++h) {
      hogs.push_back(std::make_unique<RawClient>(s.port(), 10, 4096));
      hogs.back()->authenticate("hog", hog_key);
      std::vector<uint8_t> req = encode(Request{"story", 100, "hog"});
      for (int rep = 0; rep < 100; ++rep)
        for (uint32_t c = 0; c < 7; ++c) {
          const auto g = encode(ChunkGet{c, fp16});
          req.insert(req.end(), g.begin(), g.end());
        }
      hogs.back()->send(req);
    }
    REQUIRE(eventually([&] { return s.stats().queued_bytes >= (512u << 10); }));
    const auto out = receive(receiver(s.port()));
    REQUIRE(out.kv.tokens == fx.kv.tokens);
    REQUIRE(s.stats().peak_tenant_queued_bytes <= (1u << 20) + (256u << 10));  // its share + one chunk
    s.stop();
    std::filesystem::remove_all(root);
  }
  SECTION("HELLO is accepted once per connection") {
    Sender s(auth_sender());
    s.start();
    RawClient c(s.port());
    c.send(encode(Hello{kProtocolVersion, kProtocolVersion, "x", fx.tenant, random_nonce()}));
    REQUIRE(c.next()->type == FrameType::kHelloAck);
    c.send(encode(Hello{kProtocolVersion, kProtocolVersion, "x", fx.tenant, random_nonce()}));
    const auto e = c.first_error();
    REQUIRE(e);
    REQUIRE(e->code == WireErrorCode::kBadRequest);
    REQUIRE_THAT(e->message, Catch::Contains("only once"));
  }
  SECTION("300 silent connections cannot lock an honest receiver out") {
    auto so = auth_sender();
    so.max_pending = 64;
    so.handshake_timeout_s = 3;
    Sender s(so);
    s.start();
    std::vector<std::unique_ptr<RawClient>> silent;
    for (int i = 0; i < 300; ++i) silent.push_back(std::make_unique<RawClient>(s.port(), 10));
    REQUIRE(eventually([&] { return s.stats().connections == 300; }));
    const auto out = receive(receiver(s.port()));
    REQUIRE(out.kv.tokens == fx.kv.tokens);
    REQUIRE(s.stats().evicted_pending >= 300 - 64);
    // and the ones still pending are closed by the handshake timeout
    REQUIRE(eventually([&] { return s.stats().pending == 0 && s.stats().active == 0; }));
  }
  SECTION("a serving receiver that goes quiet gets ERROR(TIMEOUT) and is closed") {
    auto so = auth_sender();
    so.idle_timeout_s = 0.5;
    Sender s(so);
    s.start();
    RawClient c(s.port());
    c.authenticate(fx.tenant, fx.key);
    c.send(encode(Request{"story", 100, "quiet"}));
    REQUIRE(c.next()->type == FrameType::kManifest);
    const auto e = c.first_error();
    REQUIRE(e);
    REQUIRE(e->code == WireErrorCode::kTimeout);
    REQUIRE(c.closed_by_peer());
    REQUIRE(s.stats().idle_timeouts == 1);
  }
}

TEST_CASE("finding 3: nothing is served without the tenant's key, tenants are isolated, errors are generic",
          "[hardening][finding3]") {
  const auto& fx = StreamFixture::get();
  SECTION("a receiver without a key, or with a wrong one, gets nothing") {
    Sender s(auth_sender());
    s.start();
    auto ro = receiver(s.port());
    ro.key.clear();
    ro.tenant.clear();
    REQUIRE(code_of([&] { receive(ro); }) == kvstream::ErrorCode::kAuth);
    ro = receiver(s.port());
    ro.key[0] ^= 1;
    REQUIRE_THROWS_WITH(receive(ro), Catch::Contains("sender error: authentication failed"));
    ro = receiver(s.port());
    ro.tenant = "nobody";  // an unknown tenant fails exactly like a bad key
    REQUIRE_THROWS_WITH(receive(ro), Catch::Contains("sender error: authentication failed"));
    REQUIRE(s.stats().auth_failures == 2);
  }
  SECTION("PROFILE_GET, REQUEST and CHUNK_GET before authentication are refused") {
    Sender s(auth_sender());
    s.start();
    const std::string hash = hash_hex(fx.profile.hash());
    for (const auto& frame : {encode(ProfileGet{hash}), encode(Request{"story", 1, "x"}), encode(ChunkGet{0, 0})}) {
      RawClient c(s.port());
      c.send(frame);
      const auto f = c.next();
      REQUIRE(f);
      REQUIRE(f->type == FrameType::kError);
      REQUIRE(decode_error(*f).code == WireErrorCode::kAuth);
    }
    RawClient c(s.port());  // after HELLO, before AUTH
    c.send(encode(Hello{kProtocolVersion, kProtocolVersion, "x", fx.tenant, random_nonce()}));
    REQUIRE(c.next()->type == FrameType::kHelloAck);
    c.send(encode(ProfileGet{hash}));
    const auto e = c.first_error();
    REQUIRE(e);
    REQUIRE(e->code == WireErrorCode::kAuth);
  }
  SECTION("a tenant sees only its own contexts") {
    const std::string root = temp_dir("f3-tenants");
    std::filesystem::create_directories(root + "/alpha");
    std::filesystem::create_directories(root + "/beta");
    std::filesystem::copy_file(fx.kvs_path, root + "/alpha/story.kvs");
    std::filesystem::copy_file(fx.dir + "/story.kvprofile", root + "/alpha/story.kvprofile");
    auto keys = std::make_shared<Keyring>();
    keys->add("alpha", Secret(32, 1));
    keys->add("beta", Secret(32, 2));
    SenderOptions so;
    so.dir = root;
    so.keys = keys;
    Sender s(so);
    s.start();
    auto ro = receiver(s.port());
    ro.tenant = "alpha";
    ro.key = Secret(32, 1);
    REQUIRE(receive(ro).kv.tokens == fx.kv.tokens);
    ro.tenant = "beta";
    ro.key = Secret(32, 2);
    REQUIRE_THROWS_WITH(receive(ro), Catch::Contains("unknown context 'story'"));
    REQUIRE(code_of([&] { receive(ro); }) == kvstream::ErrorCode::kUnknownContext);
    std::filesystem::remove_all(root);
  }
  SECTION("ERROR frames carry no server paths; the log has the details") {
    {
      std::ofstream bad(fx.dir + "/broken.kvs", std::ios::binary);
      bad << "not a container";
    }
    auto so = auth_sender();
    std::vector<std::string> log;
    std::mutex mu;
    so.log = [&](const std::string& l) {
      std::lock_guard<std::mutex> lock(mu);
      log.push_back(l);
    };
    Sender s(so);
    s.start();
    auto ro = receiver(s.port());
    ro.context = "broken";
    try {
      receive(ro);
      FAIL("a broken container was served");
    } catch (const kvstream::Error& e) {
      REQUIRE(e.code() == kvstream::ErrorCode::kInternal);
      REQUIRE_THAT(e.what(), Catch::Contains("context 'broken' cannot be served"));
      REQUIRE_THAT(e.what(), !Catch::Contains(fx.root));
    }
    s.stop();
    bool logged = false;
    for (const auto& l : log) logged |= l.find(fx.dir) != std::string::npos;
    REQUIRE(logged);
    std::filesystem::remove(fx.dir + "/broken.kvs");
  }
  SECTION("serving without keys is an explicit choice, and a receiver with a key refuses such a sender") {
    SenderOptions so;
    so.dir = fx.dir;
    REQUIRE(code_of([&] { Sender(so).start(); }) == kvstream::ErrorCode::kAuth);
    so.insecure = true;
    Sender s(so);
    s.start();
    REQUIRE_THROWS_WITH(receive(receiver(s.port())), Catch::Contains("does not authenticate"));
    auto ro = receiver(s.port());
    ro.key.clear();
    REQUIRE(receive(ro).kv.tokens == fx.kv.tokens);
  }
  SECTION("a sender that cannot prove the tenant's key is refused before anything else is read") {
    FakeSender fake([](RawClient& c) {
      c.next();  // HELLO
      HelloAck a;
      a.auth = AuthMode::kHmacSha256;
      a.server_nonce = random_nonce();
      c.send(encode(a));
      c.next();                             // AUTH
      c.send(encode(AuthOk{Mac{}}));        // a proof it cannot make
      c.send(encode(ErrorMsg{WireErrorCode::kInternal, "never read"}));
      c.closed_by_peer();
    });
    auto ro = receiver(fake.port);
    REQUIRE_THROWS_WITH(receive(ro), Catch::Contains("could not prove tenant 'test'"));
  }
}

TEST_CASE("TLS: the sender's certificate is verified, client certificates are optional", "[hardening][tls]") {
  const auto& fx = StreamFixture::get();
  const std::string pki = temp_dir("tls");
  const auto [rc, out] = kvstream::testing::shell(kvstream::testing::quote(std::string(KVSTREAM_SOURCE_DIR) +
                                                                            "/scripts/tls_test_certs.sh") +
                                                  " " + kvstream::testing::quote(pki) + " 2>&1");
  INFO(out);
  REQUIRE(rc == 0);
  auto so = auth_sender();
  so.tls = TlsServerConfig{pki + "/sender.pem", pki + "/sender.key", ""};
  SECTION("a verified TLS fetch is exact") {
    Sender s(so);
    s.start();
    auto ro = receiver(s.port());
    ro.tls = TlsClientConfig{pki + "/ca.pem", "", "", ""};
    REQUIRE(receive(ro).kv.tokens == fx.kv.tokens);
    ro.tls->server_name = "localhost";
    REQUIRE(receive(ro).kv.tokens == fx.kv.tokens);
    ro.tls->server_name = "evil.example";  // the certificate does not carry this name
    REQUIRE_THROWS_WITH(receive(ro), Catch::Contains("TLS handshake"));
  }
  SECTION("a certificate from another CA, or no TLS at all, fails clearly") {
    const std::string other = temp_dir("tls-other");
    REQUIRE(kvstream::testing::shell(kvstream::testing::quote(std::string(KVSTREAM_SOURCE_DIR) + "/scripts/tls_test_certs.sh") +
                                     " " + kvstream::testing::quote(other) + " >/dev/null 2>&1")
                .first == 0);
    Sender s(so);
    s.start();
    auto ro = receiver(s.port());
    ro.tls = TlsClientConfig{other + "/ca.pem", "", "", ""};
    REQUIRE(code_of([&] { receive(ro); }) == kvstream::ErrorCode::kAuth);
    ro.tls.reset();  // plain frames to a TLS sender: it drops them as a failed TLS handshake
    ro.stall_timeout_s = 1;
    REQUIRE_THROWS(receive(ro));
    std::filesystem::remove_all(other);
  }
  SECTION("a sender that requires client certificates") {
    so.tls->client_ca_file = pki + "/ca.pem";
    Sender s(so);
    s.start();
    auto ro = receiver(s.port());
    ro.stall_timeout_s = 2;
    ro.tls = TlsClientConfig{pki + "/ca.pem", "", "", ""};
    REQUIRE_THROWS(receive(ro));
    ro.tls = TlsClientConfig{pki + "/ca.pem", "", pki + "/client.pem", pki + "/client.key"};
    REQUIRE(receive(ro).kv.tokens == fx.kv.tokens);
  }
  std::filesystem::remove_all(pki);
}

namespace {
// A context source whose context("slow") blocks until the test opens the gate.
struct GateSource final : ContextSource {
  explicit GateSource(std::shared_ptr<ContextDir> d) : dir(std::move(d)), gate(open.get_future().share()) {}
  std::shared_ptr<const ServedContext> context(const std::string& id) override {
    if (id != "slow") return dir->context(id);
    ++entered;
    gate.wait();
    return nullptr;
  }
  std::optional<std::vector<uint8_t>> profile_bytes(const std::string& h) override { return dir->profile_bytes(h); }
  std::shared_ptr<ContextDir> dir;
  std::promise<void> open;
  std::shared_future<void> gate;
  std::atomic<int> entered{0};
};
}  // namespace

TEST_CASE("finding 6: a source that blocks does not stall other connections (work runs off the I/O thread)",
          "[hardening][finding6]") {
  const auto& fx = StreamFixture::get();
  auto gate = std::make_shared<GateSource>(std::make_shared<ContextDir>(fx.dir));
  auto so = auth_sender();
  so.tenant_source = [gate](const std::string&) { return gate; };
  Sender s(so);
  s.start();
  RawClient blocked(s.port(), 30);
  blocked.authenticate(fx.tenant, fx.key);
  blocked.send(encode(Request{"slow", 100, "x"}));
  REQUIRE(eventually([&] { return gate->entered == 1; }));
  // While one worker sits in context("slow"): another handshake completes (RawClient fails the
  // test if the HELLO_ACK takes over 5 s), and a whole fetch does.
  RawClient other(s.port(), 5);
  other.authenticate(fx.tenant, fx.key);
  REQUIRE(receive(receiver(s.port())).kv.tokens == fx.kv.tokens);
  gate->open.set_value();
  const auto e = blocked.first_error();
  REQUIRE(e);
  REQUIRE(e->code == WireErrorCode::kUnknownContext);
  // The parsed container is cached: fetching "story" again hits the cache.
  const auto hits = s.stats().cache_hits;
  REQUIRE(receive(receiver(s.port())).kv.tokens == fx.kv.tokens);
  REQUIRE(s.stats().cache_hits > hits);
}

namespace {
// MANIFEST of a context of `tokens` tokens in one chunk with one level of `level_bytes`, for the
// fixture's profile (hash and size), token ids all 0.
Manifest hostile_manifest(uint32_t tokens, uint32_t level_bytes) {
  const auto& fx = StreamFixture::get();
  Manifest m;
  m.context_id = "story";
  m.profile_hash = hash_hex(fx.profile.hash());
  m.profile_bytes = file_bytes(fx.dir + "/story.kvprofile").size();
  m.num_tokens = tokens;
  m.levels = {{0, "q8", 1.0, 0.0}};
  m.chunks = {{0, tokens, 0, {level_bytes}}};
  m.token_ids.assign(tokens, 0);
  return m;
}

// An insecure fake sender that answers HELLO + REQUEST with `m`, PROFILE_GET with the fixture's
// profile, and the first CHUNK_GET with a CHUNK_DATA header claiming `chunk_len` bytes.
std::unique_ptr<FakeSender> hostile_sender(Manifest m, uint32_t chunk_len) {
  return std::make_unique<FakeSender>([m, chunk_len](RawClient& c) {
    c.next();  // HELLO
    c.send(encode(HelloAck{kProtocolVersion, 1u << 20, "hostile", AuthMode::kNone, {}}));
    c.next();  // REQUEST
    c.send(encode(m));
    while (auto f = c.next()) {
      if (f->type == FrameType::kProfileGet) {
        const auto& fx = StreamFixture::get();
        c.send(encode(ProfileData{m.profile_hash, file_bytes(fx.dir + "/story.kvprofile")}));
      } else if (f->type == FrameType::kChunkGet) {
        c.send(header(FrameType::kChunkData, chunk_len));
      }
    }
  });
}
}  // namespace

TEST_CASE("finding 7: the receiver bounds what a sender announces by the model's window and its memory budget",
          "[hardening][finding7]") {
  const auto& fx = StreamFixture::get();
  auto ro = receiver(0);
  ro.key.clear();  // the fake senders are insecure
  ro.tenant.clear();
  ro.stall_timeout_s = 2;
  const uint64_t before = rss_bytes();
  reset_peak_rss();
  SECTION("2^19 tokens for a model with a 512-token window") {
    auto fake = hostile_sender(hostile_manifest(kMaxManifestTokens, 100), 0);
    ro.port = fake->port;
    REQUIRE_THROWS_WITH(receive(ro), Catch::Contains("does not fit the model's window of 512"));
  }
  SECTION("2^19 tokens without a model: the profile's shape makes a 671 MB cache, over the 512 MiB budget") {
    auto fake = hostile_sender(hostile_manifest(kMaxManifestTokens, 100), 0);
    ro.port = fake->port;
    ro.model = nullptr;
    ro.profile_dir = temp_dir("f7-profiles");  // empty: the profile is fetched, then its shape checked
    REQUIRE(code_of([&] { receive(ro); }) == kvstream::ErrorCode::kResourceExhausted);
    std::filesystem::remove_all(ro.profile_dir);
  }
  SECTION("a chunk frame longer than the manifest announced is refused from its header") {
    auto fake = hostile_sender(hostile_manifest(64, 100), 60u << 20);
    ro.port = fake->port;
    ro.model = nullptr;
    ro.profile_dir = fx.dir;  // the profile is cached: the chunk is requested at once
    REQUIRE_THROWS_WITH(receive(ro), Catch::Contains("CHUNK_DATA frame of 62914560 bytes exceeds the") && Catch::Contains("bytes accepted now"));
  }
  REQUIRE(peak_rss_bytes() < before + (64u << 20));
  SECTION("the budget is what a real fetch is checked against") {
    Sender s(auth_sender());
    s.start();
    auto r = receiver(s.port());
    r.memory_budget_bytes = 100 << 10;  // under the 448-token cache (573 KB)
    REQUIRE_THROWS_WITH(receive(r), Catch::Contains("over the receiver's memory budget"));
    r.memory_budget_bytes = 4 << 20;
    REQUIRE(receive(r).kv.tokens == fx.kv.tokens);
  }
}

TEST_CASE("version 3: a CANCEL replaces a queued, unsent CHUNK_DATA in place and every CHUNK_GET gets one answer",
          "[hardening][cancel]") {
  // The controller's CANCEL (frame 11) through the worker-pool sender: the client asks for ~16 MiB
  // of chunk 0 and does not read, so the answers behind them (more than the sockets' buffers hold:
  // tcp_wmem's 4 MiB and the client's receive buffer) are still queued when the CANCELs arrive.
  const auto& fx = StreamFixture::get();
  SECTION("before authentication a CANCEL is refused like any request") {
    Sender s(auth_sender());
    s.start();
    RawClient c(s.port(), 10);
    Hello h;
    h.tenant = fx.tenant;
    h.client_nonce = random_nonce();
    std::vector<uint8_t> out = encode(h);
    const auto cancel = encode(Cancel{0, kTextLevel});
    out.insert(out.end(), cancel.begin(), cancel.end());
    c.send(out);
    const auto e = c.first_error();
    REQUIRE(e);
    REQUIRE(e->code == WireErrorCode::kAuth);
  }
  SECTION("a CANCEL replaces a queued answer by its replacement or a cancelled answer, in place") {
    SenderOptions so;
    so.dir = fx.dir;
    so.insecure = true;
    so.max_queued_bytes = 64u << 20;
    Sender s(so);
    s.start();
    RawClient c(s.port(), 20);
    std::vector<uint8_t> out = encode(Hello{});
    const auto req = encode(Request{"story", 1000, "cancel-test"});
    out.insert(out.end(), req.begin(), req.end());
    c.send(out);
    auto ack = c.next();
    REQUIRE((ack && ack->type == FrameType::kHelloAck));
    auto mf = c.next();
    REQUIRE((mf && mf->type == FrameType::kManifest));
    const Manifest m = decode_manifest(*mf);
    REQUIRE(m.link.valid);  // loopback TCP: the sender's TCP_INFO
    REQUIRE(m.chunks.size() >= 4);
    const uint16_t fp16 = level_id("fp16");
    const int fi = manifest_level_index(m, fp16);
    REQUIRE(fi >= 0);
    const size_t ahead = (16u << 20) / m.chunks[0].level_bytes[size_t(fi)] + 1;
    out.clear();
    auto add = [&](const std::vector<uint8_t>& f) { out.insert(out.end(), f.begin(), f.end()); };
    for (size_t i = 0; i < ahead; ++i) add(encode(ChunkGet{0, fp16}));
    for (uint32_t k : {1u, 2u, 3u}) add(encode(ChunkGet{k, fp16}));
    c.send(out);
    out.clear();
    // CANCEL acts on answers already queued (best effort by design): wait until the sender has
    // queued every answer above (its blobs are read on the worker pool) before cancelling.
    {
      uint64_t last = ~0ull;
      int stable = 0;
      for (int i = 0; i < 400 && stable < 4; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
        const uint64_t q = s.stats().queued_bytes;
        stable = (q == last && q > 0) ? stable + 1 : 0;
        last = q;
      }
    }
    add(encode(Cancel{1, kTextLevel}));      // replaced by the chunk's text
    add(encode(Cancel{2, kNoReplacement}));  // dropped: a cancelled answer
    add(encode(Cancel{1, fp16}));            // an answer already replaced: changes nothing
    c.send(out);
    const auto reader = codec::ContainerReader::open(fx.kvs_path);
    auto expect_blob = [&](uint32_t chunk, int ladder) {
      const auto b = reader.blob(chunk, ladder);
      return std::vector<uint8_t>(b.begin(), b.end());
    };
    const auto chunk0 = expect_blob(0, int(fp16));
    for (size_t i = 0; i < ahead; ++i) {
      auto f = c.next();
      REQUIRE((f && f->type == FrameType::kChunkData));
      const ChunkData cd = decode_chunk_data(*f);
      REQUIRE(cd.index == 0);
      REQUIRE(cd.level == fp16);
      REQUIRE(cd.status == kChunkServed);
      REQUIRE(cd.blob == chunk0);
    }
    auto next_chunk = [&] {
      auto f = c.next();
      REQUIRE((f && f->type == FrameType::kChunkData));
      return decode_chunk_data(*f);
    };
    const ChunkData c1 = next_chunk(), c2 = next_chunk(), c3 = next_chunk();
    REQUIRE(c1.index == 1);
    REQUIRE(c1.level == kTextLevel);  // in chunk 1's place in the answer order
    REQUIRE(c1.status == kChunkServed);
    REQUIRE(c1.blob == expect_blob(1, reader.text_level()));
    REQUIRE(c2.index == 2);
    REQUIRE(c2.level == fp16);
    REQUIRE(c2.status == kChunkCancelled);
    REQUIRE(c2.blob.empty());
    REQUIRE(c3.index == 3);
    REQUIRE(c3.level == fp16);
    REQUIRE(c3.blob == expect_blob(3, int(fp16)));
    REQUIRE(c3.link.valid);
    // A replacement level the manifest does not have is a bad request.
    c.send(encode(Cancel{3, 77}));
    const auto e = c.first_error();
    REQUIRE(e);
    REQUIRE(e->code == WireErrorCode::kBadRequest);
    REQUIRE(eventually([&] { return s.stats().active == 0 && s.stats().queued_bytes == 0; }));
  }
}
