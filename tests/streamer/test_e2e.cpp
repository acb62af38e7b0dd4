// End to end over loopback with real data: sender + receiver (+ an in-process trace-shaped relay),
// exact KV reassembly with the context's token ids, and the failure cases: wrong context id,
// corrupted frame, corrupted blob (falls back to text), sender closing mid-stream, stalled sender,
// a receiver that never reads (must not block others), an old-version peer.
#include <catch2/catch.hpp>

#include <asio.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include "codec/container.h"
#include "codec/safetensors.h"
#include "netsim/relay.h"
#include "streamer/receiver.h"
#include "streamer/sender.h"
#include "streamer/sim_inputs.h"
#include "streamer/stream_sim.h"
#include "streamer/wire.h"
#include "tests/streamer/fixture.h"
#include "tests/streamer/raw_client.h"

using namespace kvstream;
using namespace kvstream::streamer;
using kvstream::testing::RawClient;
using kvstream::testing::StreamFixture;

namespace {

std::string temp_profile_dir(const std::string& tag) {
  const auto p = std::filesystem::temp_directory_path() /
                 ("kvstream-prof-" + tag + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  return p.string();
}

ReceiverOptions base_options(uint16_t port, const std::string& policy, double slo_s = 10.0) {
  const auto& fx = StreamFixture::get();
  ReceiverOptions ro;
  ro.port = port;
  ro.context = "story";
  ro.slo_s = slo_s;
  ro.policy = parse_policy(policy);
  ro.model = &fx.model;
  ro.profile_dir = temp_profile_dir("e2e");
  ro.stall_timeout_s = 2;
  ro.total_timeout_s = 30;
  ro.tenant = fx.tenant;
  ro.key = fx.key;
  return ro;
}

// Rows of chunk c (64 tokens) as the container decodes them at ladder level `level`.
KvCache decoded_chunk(const codec::ContainerReader& r, const codec::Profile& p, int level, uint32_t c) {
  return codec::decode_container(r, &p, level, c, c + 1, false, 1);
}

bool rows_equal(const KvCache& a, size_t a0, const KvCache& b, size_t b0, size_t n) {
  const size_t kd = size_t(a.shape.kv_dim());
  for (int l = 0; l < a.shape.n_layers; ++l)
    for (size_t i = 0; i < n * kd; ++i)
      if (a.k[l][a0 * kd + i] != b.k[l][b0 * kd + i] || a.v[l][a0 * kd + i] != b.v[l][b0 * kd + i]) return false;
  return true;
}

// Every chunk of `kv` equals what its chosen option must produce: the container's decode for a
// level, the model's recompute (given the received earlier chunks) for text.
void check_assembly(const ReceiveOutcome& out) {
  const auto& fx = StreamFixture::get();
  const auto reader = codec::ContainerReader::open(fx.kvs_path);
  const auto& info = reader.info();
  REQUIRE(out.kv.num_tokens() == info.num_tokens);
  REQUIRE(out.result.chunks.size() == info.num_chunks);
  // every chunk carries the context's token ids, whatever level it was fetched at
  REQUIRE(out.kv.tokens == fx.kv.tokens);
  for (uint32_t c = 0; c < info.num_chunks; ++c) {
    const auto& rec = out.result.chunks[c];
    const size_t b = info.chunk_begin(c), n = info.chunk_end(c) - b;
    if (!rec.served_level.empty()) {  // a hedge's or an upgrade's KV (controller, issue 14)
      const KvCache d = decoded_chunk(reader, fx.profile, info.level_index(rec.served_level), c);
      REQUIRE(rows_equal(d, 0, out.kv, b, n));
    } else if (rec.level == "text" || rec.fallback == "text") {
      KvCache prefix = out.kv.slice(0, b);
      const auto toks = reader.tokens(c);
      fx.model.recompute(prefix, toks);
      REQUIRE(rows_equal(prefix, b, out.kv, b, n));
      for (size_t t = 0; t < n; ++t) REQUIRE(out.kv.tokens[b + t] == toks[t]);
    } else {
      const KvCache d = decoded_chunk(reader, fx.profile, info.level_index(rec.level), c);
      REQUIRE(rows_equal(d, 0, out.kv, b, n));
    }
  }
}

struct RunningSender {
  explicit RunningSender(SenderFaults faults = {}) {
    SenderOptions so;
    so.dir = StreamFixture::get().root;  // tenant test's contexts are ROOT/test
    so.keys = StreamFixture::get().keys;
    so.faults = faults;
    sender = std::make_unique<Sender>(so);
    sender->start();
  }
  uint16_t port() const { return sender->port(); }
  std::unique_ptr<Sender> sender;
};

}  // namespace

TEST_CASE("loopback fetch at a fixed level reassembles the container's decode exactly", "[e2e]") {
  RunningSender s;
  auto ro = base_options(s.port(), "fixed:" + codec::ContainerReader::open(StreamFixture::get().kvs_path).info().ladder[0].name);
  const auto out = receive(ro);
  REQUIRE(out.profile_fetched);  // fresh profile dir: the sender sent it once
  check_assembly(out);
  REQUIRE(out.result.first_token >= 0);
  // the profile is now cached: a second fetch does not ask for it
  const auto again = receive(ro);
  REQUIRE_FALSE(again.profile_fetched);
  std::filesystem::remove_all(ro.profile_dir);
}

TEST_CASE("policy text recomputes the exact original KV cache", "[e2e]") {
  RunningSender s;
  auto ro = base_options(s.port(), "text");
  const auto out = receive(ro);
  check_assembly(out);
  const auto& fx = StreamFixture::get();
  REQUIRE(rows_equal(out.kv, 0, fx.kv, 0, fx.kv.num_tokens()));
  double agreement = 0, ppl = 0;
  measure_quality(fx.model, fx.kv, out.kv, 1, 16, agreement, ppl);
  REQUIRE(agreement == 1.0);
  REQUIRE(ppl == Approx(0.0).margin(1e-9));
  std::filesystem::remove_all(ro.profile_dir);
}

TEST_CASE("adaptive over an in-process trace-shaped relay completes and assembles correctly", "[e2e]") {
  RunningSender s;
  netsim::RelayConfig rc;
  rc.trace = netsim::Trace::load(kvstream::testing::data_dir() + "/traces/mahimahi/TMobile-LTE-short.down");
  rc.connect_port = s.port();
  rc.delay_ns = netsim::seconds_to_ns(0.005);
  netsim::Relay relay(rc);
  relay.start();
  auto ro = base_options(relay.port(), "adaptive", 0.25);
  ro.prefill_rate = 2000;
  const auto out = receive(ro);
  check_assembly(out);
  REQUIRE(out.result.ttft_ms > 0);
  REQUIRE(out.result.ttft_ms >= out.result.last_byte_ms);
  for (const auto& c : out.result.chunks) REQUIRE(c.end_ms >= c.start_ms);
  relay.stop();
  std::filesystem::remove_all(ro.profile_dir);
}

TEST_CASE("a wrong context id gives a clear error", "[e2e][failure]") {
  RunningSender s;
  auto ro = base_options(s.port(), "adaptive");
  ro.context = "no-such-story";
  REQUIRE_THROWS_WITH(receive(ro), Catch::Contains("unknown context 'no-such-story'"));
}

TEST_CASE("a corrupted chunk is detected, never assembled", "[e2e][failure]") {
  SenderFaults f;
  f.corrupt_chunk = 2;
  RunningSender s(f);
  auto ro = base_options(s.port(), "fixed:q8");
  REQUIRE_THROWS_WITH(receive(ro), Catch::Contains("checksum"));
  std::filesystem::remove_all(ro.profile_dir);
}

TEST_CASE("the sender closing mid-stream gives a clear error", "[e2e][failure]") {
  SenderFaults f;
  f.close_at_chunk = 3;
  RunningSender s(f);
  auto ro = base_options(s.port(), "fixed:q8");
  REQUIRE_THROWS_WITH(receive(ro), Catch::Contains("closed the connection"));
  std::filesystem::remove_all(ro.profile_dir);
}

TEST_CASE("a stalled sender times out instead of hanging", "[e2e][failure]") {
  SenderFaults f;
  f.stall_at_chunk = 1;
  RunningSender s(f);
  auto ro = base_options(s.port(), "fixed:q8");
  ro.stall_timeout_s = 0.5;
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE_THROWS_WITH(receive(ro), Catch::Contains("stalled"));
  REQUIRE(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
  std::filesystem::remove_all(ro.profile_dir);
}

TEST_CASE("nothing listening gives a connect error", "[e2e][failure]") {
  uint16_t port;
  {
    RunningSender s;
    port = s.port();
  }
  auto ro = base_options(port, "adaptive");
  REQUIRE_THROWS_WITH(receive(ro), Catch::Contains("connect"));
}

TEST_CASE("a receiver that never reads does not block another", "[e2e]") {
  RunningSender s;
  RawClient hog(s.port());
  hog.authenticate(StreamFixture::get().tenant, StreamFixture::get().key);
  std::vector<uint8_t> req;
  auto add = [&](const std::vector<uint8_t>& f) { req.insert(req.end(), f.begin(), f.end()); };
  add(encode(Request{"story", 100, "hog"}));
  for (int rep = 0; rep < 50; ++rep)
    for (uint32_t c = 0; c < 7; ++c) add(encode(ChunkGet{c, 0}));
  hog.send(req);  // and never read a byte
  auto ro = base_options(s.port(), "fixed:q8");
  const auto out = receive(ro);
  check_assembly(out);
  std::filesystem::remove_all(ro.profile_dir);
}

TEST_CASE("the simulator replays a real container over a trace", "[sim]") {
  const auto& fx = StreamFixture::get();
  auto ctx = load_context_for_sim(fx.kvs_path, "", 1);
  ctx.inputs.prefill_rate = 2000;
  ctx.inputs.first_token_s = 1.0 / 2000;
  const auto trace = netsim::Trace::load(kvstream::testing::data_dir() + "/traces/mahimahi/Verizon-EVDO-driving.down");
  SimOptions so;
  so.delay_s = 0.01;
  so.policy = parse_policy("q8");
  so.slo_s = 100;
  const auto q8 = simulate_stream(ctx.inputs, trace, so);
  REQUIRE(q8.chunks.size() == ctx.inputs.spec.chunks.size());
  for (const auto& c : q8.chunks) REQUIRE(c.level == "q8");
  so.slo_s = q8.ttft_ms / 3e3;
  so.policy = parse_policy("oracle");
  const auto oracle = simulate_stream(ctx.inputs, trace, so);
  so.policy = parse_policy("adaptive");
  const auto adaptive = simulate_stream(ctx.inputs, trace, so);
  so.policy = parse_policy("text");
  const auto text = simulate_stream(ctx.inputs, trace, so);
  // On this slow link (0.5 Mbit/s) an SLO of a third of q8's TTFT is met by the oracle and by
  // adaptive, and adaptive is never better than the oracle.
  REQUIRE(q8.ttft_ms > 1000);
  REQUIRE(oracle.slo_met);
  REQUIRE(adaptive.slo_met);
  REQUIRE(adaptive.greedy_agreement <= oracle.greedy_agreement + 1e-9);
  REQUIRE(text.greedy_agreement == 1.0);
  // the simulated TTFT matches the oracle's own pipeline prediction
  REQUIRE(oracle.ttft_ms == Approx(oracle.predicted_ttft_ms).epsilon(0.05));
}

TEST_CASE("the sender answers malformed or out-of-range requests with an ERROR frame", "[e2e][failure]") {
  RunningSender s;
  const auto& fx = StreamFixture::get();
  auto exchange = [&](const std::vector<uint8_t>& bytes, bool authenticate) {
    RawClient c(s.port());
    if (authenticate) c.authenticate(fx.tenant, fx.key);
    c.send(bytes);
    return c.first_error();
  };
  auto garbage = std::vector<uint8_t>(32, 0xAB);
  auto e1 = exchange(garbage, false);
  REQUIRE(e1.has_value());
  REQUIRE(e1->code == WireErrorCode::kBadFrame);
  std::vector<uint8_t> req;
  auto add = [&](const std::vector<uint8_t>& f) { req.insert(req.end(), f.begin(), f.end()); };
  add(encode(Request{"story", 100, "t"}));
  add(encode(ChunkGet{999, 0}));
  auto e2 = exchange(req, true);
  REQUIRE(e2.has_value());
  REQUIRE(e2->code == WireErrorCode::kBadRequest);
  REQUIRE_THAT(e2->message, Catch::Contains("out of range"));
  req.clear();
  add(encode(ChunkGet{0, 0}));  // authenticated, but before REQUEST
  auto e3 = exchange(req, true);
  REQUIRE(e3.has_value());
  REQUIRE(e3->code == WireErrorCode::kBadRequest);
  auto e4 = exchange(req, false);  // before HELLO: not authenticated
  REQUIRE(e4.has_value());
  REQUIRE(e4->code == WireErrorCode::kAuth);
}

TEST_CASE("KV-fetched chunks carry the context's token ids into the written cache", "[e2e]") {
  // fixed:q8 fetches no text at all: the ids come from the manifest. With and without a model.
  const auto& fx = StreamFixture::get();
  RunningSender s;
  for (const bool with_model : {true, false}) {
    auto ro = base_options(s.port(), "fixed:q8");
    if (!with_model) ro.model = nullptr;
    const auto out = receive(ro);
    for (const auto& c : out.result.chunks) REQUIRE(c.level == "q8");
    REQUIRE(out.kv.tokens == fx.kv.tokens);
    // what `kvstream recv -o` writes
    const auto path = std::filesystem::temp_directory_path() /
                      ("kvstream-recv-ids-" + std::to_string(::getpid()) + ".safetensors");
    write_safetensors(path.string(), out.kv);
    const auto back = read_safetensors(path.string());
    std::filesystem::remove(path);
    REQUIRE(back.tokens == fx.kv.tokens);
    REQUIRE(back.num_tokens() == fx.kv.num_tokens());
    if (with_model) check_assembly(out);
    std::filesystem::remove_all(ro.profile_dir);
  }
}

TEST_CASE("a chunk whose blob fails to decode is fetched again as text and recomputed", "[e2e][failure]") {
  const auto& fx = StreamFixture::get();
  SECTION("the first chunk: recomputed exactly as the original prefill") {
    SenderFaults f;
    f.corrupt_blob_chunk = 0;  // frame CRC valid, blob CRC not
    RunningSender s(f);
    auto ro = base_options(s.port(), "fixed:q8");
    std::vector<std::string> warnings;
    ro.on_warning = [&](const std::string& w) { warnings.push_back(w); };
    const auto out = receive(ro);
    REQUIRE(warnings.size() == 1);
    REQUIRE_THAT(warnings[0], Catch::Contains("chunk 0 (level q8) failed to decode") && Catch::Contains("as text"));
    const auto& c0 = out.result.chunks[0];
    REQUIRE(c0.level == "q8");  // what the controller chose
    REQUIRE(c0.fallback == "text");
    REQUIRE_THAT(c0.fallback_reason, Catch::Contains("CRC"));
    REQUIRE(c0.fallback_bytes > 0);
    const auto j = out.result.to_json();
    REQUIRE(j["chunks"][0]["fallback"] == "text");
    REQUIRE_FALSE(j["chunks"][1].contains("fallback"));
    for (size_t c = 1; c < out.result.chunks.size(); ++c) REQUIRE(out.result.chunks[c].fallback.empty());
    check_assembly(out);
    // chunk 0 has no prefix: its recompute is the original prefill's rows, bit for bit
    REQUIRE(rows_equal(out.kv, 0, fx.kv, 0, 64));
    std::filesystem::remove_all(ro.profile_dir);
  }
  SECTION("a middle chunk, with later text chunks already queued behind it") {
    SenderFaults f;
    f.corrupt_blob_chunk = 1;
    RunningSender s(f);
    auto ro = base_options(s.port(), "plan:q8,q8,q8,T,T,T,T");
    std::vector<std::string> warnings;
    ro.on_warning = [&](const std::string& w) { warnings.push_back(w); };
    const auto out = receive(ro);
    REQUIRE(warnings.size() == 1);
    REQUIRE(out.result.chunks[1].fallback == "text");
    check_assembly(out);  // chunk 1 = the model's recompute on the received chunk 0, exactly
    // and close to the original (the prefix it was recomputed on is q8, not the original)
    const size_t kd = size_t(fx.kv.shape.kv_dim());
    double max_err = 0, max_abs = 0;
    for (int l = 0; l < fx.kv.shape.n_layers; ++l)
      for (size_t i = 64 * kd; i < 128 * kd; ++i) {
        max_err = std::max<double>(max_err, std::abs(out.kv.k[l][i] - fx.kv.k[l][i]));
        max_err = std::max<double>(max_err, std::abs(out.kv.v[l][i] - fx.kv.v[l][i]));
        max_abs = std::max<double>(max_abs, std::abs(fx.kv.k[l][i]));
      }
    REQUIRE(max_err < 0.05 * max_abs);
    std::filesystem::remove_all(ro.profile_dir);
  }
}

TEST_CASE("a corrupt blob with no way to recompute, or a corrupt text blob, is a clear error", "[e2e][failure]") {
  SECTION("no model") {
    SenderFaults f;
    f.corrupt_blob_chunk = 3;
    RunningSender s(f);
    auto ro = base_options(s.port(), "fixed:q8");
    ro.model = nullptr;
    REQUIRE_THROWS_WITH(receive(ro), Catch::Contains("chunk 3 (level q8) failed to decode") &&
                                         Catch::Contains("no model to recompute"));
    std::filesystem::remove_all(ro.profile_dir);
  }
  SECTION("the text fetched as the fallback is corrupt too: one retry only") {
    SenderFaults f;
    f.corrupt_blob_chunk = 2;
    f.corrupt_text_chunk = 2;
    RunningSender s(f);
    auto ro = base_options(s.port(), "fixed:q8");
    REQUIRE_THROWS_WITH(receive(ro), Catch::Contains("chunk 2 (text)") && Catch::Contains("CRC"));
    std::filesystem::remove_all(ro.profile_dir);
  }
  SECTION("a text chunk") {
    SenderFaults f;
    f.corrupt_text_chunk = 1;
    RunningSender s(f);
    auto ro = base_options(s.port(), "text");
    REQUIRE_THROWS_WITH(receive(ro), Catch::Contains("chunk 1 (text)"));
    std::filesystem::remove_all(ro.profile_dir);
  }
}

TEST_CASE("a version-1 or version-2 peer is turned away with an error it can read", "[e2e][failure]") {
  RunningSender s;
  auto first_error = [&](const std::vector<uint8_t>& bytes, uint16_t& version) {
    asio::io_context io;
    asio::ip::tcp::socket sock(io);
    sock.connect({asio::ip::make_address("127.0.0.1"), s.port()});
    asio::write(sock, asio::buffer(bytes));
    std::vector<uint8_t> all;
    std::array<uint8_t, 4096> buf{};
    asio::error_code ec;
    while (!ec) {
      const size_t n = sock.read_some(asio::buffer(buf), ec);
      all.insert(all.end(), buf.begin(), buf.begin() + long(n));
    }
    REQUIRE(all.size() >= kHeaderSize);
    version = header_version(all.data());
    const uint32_t len = uint32_t(all[8]) | uint32_t(all[9]) << 8 | uint32_t(all[10]) << 16 | uint32_t(all[11]) << 24;
    REQUIRE(all.size() == kHeaderSize + len);  // one ERROR frame, then the sender closed
    REQUIRE(all[6] == uint8_t(FrameType::kError));
    return decode_error(Frame{FrameType::kError, std::vector<uint8_t>(all.begin() + kHeaderSize, all.end())});
  };
  // an older frame header: answered under that version's header so that the old peer can read it
  for (uint8_t old : {uint8_t(1), uint8_t(2)}) {
    auto hello_old = encode(Hello{old, old, "old", "", {}});
    hello_old[4] = old;
    uint16_t v = 0;
    const auto e1 = first_error(hello_old, v);
    REQUIRE(v == old);
    REQUIRE(e1.code == WireErrorCode::kVersion);
    REQUIRE_THAT(e1.message, Catch::Contains("unsupported protocol version " + std::to_string(old) + " (this peer speaks 3)"));
  }
  uint16_t v = 0;
  // a current header offering only version 1 in HELLO
  const auto e2 = first_error(encode(Hello{1, 1, "old", "", {}}), v);
  REQUIRE(v == kProtocolVersion);
  REQUIRE(e2.code == WireErrorCode::kVersion);
  REQUIRE_THAT(e2.message, Catch::Contains("no common protocol version"));
}

TEST_CASE("the simulator's sender turnaround misses a delivery opportunity that is already past", "[sim]") {
  // Mahimahi-style opportunities at 5 ms and 10 ms of every 20 ms. With a 5 ms one-way delay the
  // HELLO reaches the sender at exactly 5 ms: with no turnaround the answer takes the 5 ms
  // opportunity (arrives at 10 ms); with any turnaround it waits for the 10 ms one (15 ms), as a
  // real sender behind the relay does.
  const auto& fx = StreamFixture::get();
  auto ctx = load_context_for_sim(fx.kvs_path, "", 1);
  const auto trace = netsim::Trace::from_opportunities({5'000'000, 10'000'000}, {1500, 1500}, 20'000'000);
  SimOptions so;
  so.delay_s = 0.005;
  so.slo_s = 100;
  so.policy = parse_policy("text");
  so.turnaround_s = 0;
  const auto instant = simulate_stream(ctx.inputs, trace, so);
  so.turnaround_s = 0.3e-3;
  const auto real = simulate_stream(ctx.inputs, trace, so);
  REQUIRE(instant.chunks.front().request_ms == Approx(10.0));
  REQUIRE(real.chunks.front().request_ms == Approx(15.0));
  so.turnaround_s = -1;
  REQUIRE_THROWS_WITH(simulate_stream(ctx.inputs, trace, so), Catch::Contains("turnaround"));
}

