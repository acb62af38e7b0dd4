// Wire protocol: frame and message round trips, and malformed frames rejected with clear errors.
#include <catch2/catch.hpp>

#include <filesystem>
#include <random>

#include <unistd.h>

#include "streamer/auth.h"
#include "streamer/plan.h"
#include "streamer/wire.h"

using namespace kvstream::streamer;
using kvstream::streamer::Secret;

namespace {

Frame parse_one(const std::vector<uint8_t>& bytes) {
  FrameReader r;
  r.feed(bytes.data(), bytes.size());
  auto f = r.next();
  REQUIRE(f.has_value());
  REQUIRE(r.buffered() == 0);
  return *f;
}

Manifest sample_manifest() {
  Manifest m;
  m.context_id = "story-1";
  m.profile_hash = "0123456789abcdef";
  m.profile_bytes = 12345;
  m.num_tokens = 100;
  m.levels = {{0, "hi", 0.99, 0.5}, {1, "lo", 0.9, 3.0}, {7, "q8", 0.995, 0.1}};
  m.chunks = {{0, 64, 130, {4000, 2000, 20000}}, {64, 36, 74, {2300, 1100, 11600}}};
  for (int i = 0; i < 100; ++i) m.token_ids.push_back(i == 99 ? 0x7FFFFFFF : i * 5 + 1);
  return m;
}

}  // namespace

TEST_CASE("crc32c matches the Castagnoli check value", "[wire]") {
  const std::string s = "123456789";
  REQUIRE(crc32c(reinterpret_cast<const uint8_t*>(s.data()), s.size()) == 0xE3069283u);
}

TEST_CASE("every message round-trips through frames", "[wire]") {
  Hello h{1, 1, "test-agent", "", {}};
  auto hh = decode_hello(parse_one(encode(h)));
  REQUIRE(hh.agent == "test-agent");
  REQUIRE(hh.min_version == 1);

  HelloAck a{kProtocolVersion, 1u << 20, "srv"};
  REQUIRE(decode_hello_ack(parse_one(encode(a))).max_chunk_bytes == (1u << 20));

  Request q{"ctx_1.a-b", 250, "adaptive"};
  auto qq = decode_request(parse_one(encode(q)));
  REQUIRE(qq.context_id == q.context_id);
  REQUIRE(qq.slo_ms == 250);
  REQUIRE(qq.policy == "adaptive");

  Manifest m = sample_manifest();
  Manifest mm = decode_manifest(parse_one(encode(m)));
  REQUIRE(mm.context_id == m.context_id);
  REQUIRE(mm.profile_hash == m.profile_hash);
  REQUIRE(mm.levels.size() == 3);
  REQUIRE(mm.levels[2].id == 7);
  REQUIRE(mm.levels[1].agreement == Approx(0.9));
  REQUIRE(mm.chunks[1].level_bytes[2] == 11600);
  REQUIRE(mm.chunks[1].text_bytes == 74);
  REQUIRE(manifest_level_index(mm, 7) == 2);
  REQUIRE(manifest_level_index(mm, 3) == -1);
  REQUIRE(mm.token_ids == m.token_ids);  // version 2: the context's token ids

  REQUIRE(decode_profile_get(parse_one(encode(ProfileGet{"abcdef"}))).profile_hash == "abcdef");
  ProfileData pd{"abcdef", {1, 2, 3, 4, 5}};
  REQUIRE(decode_profile(parse_one(encode(pd))).bytes == pd.bytes);

  ChunkGet g{5, kTextLevel};
  auto gg = decode_chunk_get(parse_one(encode(g)));
  REQUIRE(gg.index == 5);
  REQUIRE(gg.level == kTextLevel);

  std::vector<uint8_t> blob(100000);
  std::mt19937 rng(7);
  for (auto& b : blob) b = uint8_t(rng());
  ChunkData cd;
  cd.index = 3;
  cd.level = 1;
  cd.blob = blob;
  auto cc = decode_chunk_data(parse_one(encode(cd)));
  REQUIRE(cc.blob == blob);
  REQUIRE(cc.index == 3);
  REQUIRE_FALSE(cc.link.valid);

  ErrorMsg e{WireErrorCode::kUnknownContext, "no context 'x'"};
  auto ee = decode_error(parse_one(encode(e)));
  REQUIRE(ee.code == WireErrorCode::kUnknownContext);
  REQUIRE(ee.message == e.message);
  REQUIRE(parse_one(encode_end()).type == FrameType::kEnd);
}

TEST_CASE("an ERROR frame can be written for an older peer", "[wire]") {
  const auto f = encode_error_for_version(ErrorMsg{WireErrorCode::kVersion, "too old"}, 1);
  REQUIRE(header_version(f.data()) == 1);
  REQUIRE(f[4] == 1);
  // a current reader refuses it by its version, and its CRC is valid for the version-1 header
  FrameReader r;
  r.feed(f.data(), f.size());
  REQUIRE_THROWS_WITH(r.next(), Catch::Contains("version 1"));
  const uint32_t crc = uint32_t(f[12]) | uint32_t(f[13]) << 8 | uint32_t(f[14]) << 16 | uint32_t(f[15]) << 24;
  std::vector<uint8_t> payload(f.begin() + kHeaderSize, f.end());
  REQUIRE_NOTHROW(check_crc(f.data(), payload, crc));
  REQUIRE(encode_error_for_version(ErrorMsg{WireErrorCode::kVersion, "x"}, kProtocolVersion) ==
          encode(ErrorMsg{WireErrorCode::kVersion, "x"}));
  REQUIRE_THROWS_AS(encode_error_for_version(ErrorMsg{}, 0), ProtocolError);
}

TEST_CASE("the frame reader reassembles frames fed byte by byte", "[wire]") {
  std::vector<uint8_t> stream;
  for (int i = 0; i < 5; ++i) {
    auto f = encode(ChunkGet{uint32_t(i), uint16_t(i)});
    stream.insert(stream.end(), f.begin(), f.end());
  }
  FrameReader r;
  int got = 0;
  for (uint8_t b : stream) {
    r.feed(&b, 1);
    while (auto f = r.next()) {
      REQUIRE(decode_chunk_get(*f).index == uint32_t(got));
      ++got;
    }
  }
  REQUIRE(got == 5);
}

TEST_CASE("malformed frames are rejected", "[wire]") {
  auto good = encode(Request{"ctx", 100, "adaptive"});
  auto expect_reject = [](std::vector<uint8_t> bytes, const std::string& what) {
    FrameReader r;
    r.feed(bytes.data(), bytes.size());
    try {
      r.next();
      FAIL("accepted a malformed frame");
    } catch (const ProtocolError& e) {
      REQUIRE_THAT(e.what(), Catch::Contains(what));
    }
  };
  SECTION("bad magic") {
    auto b = good;
    b[0] = 'X';
    expect_reject(b, "magic");
  }
  SECTION("wrong version") {
    auto b = good;
    b[4] = 9;
    expect_reject(b, "version");
  }
  SECTION("a version-1 frame is refused by name") {
    auto b = good;
    b[4] = 1;
    b[5] = 0;
    expect_reject(b, "unsupported protocol version 1 (this peer speaks 3)");
  }
  SECTION("a version-2 frame is refused by name") {
    auto b = good;
    b[4] = 2;
    expect_reject(b, "unsupported protocol version 2 (this peer speaks 3)");
  }
  SECTION("unknown type") {
    auto b = good;
    b[6] = 77;
    expect_reject(b, "unknown frame type");
  }
  SECTION("nonzero flags") {
    auto b = good;
    b[7] = 1;
    expect_reject(b, "flags");
  }
  SECTION("length over the type's limit, rejected from the header alone") {
    std::vector<uint8_t> b(good.begin(), good.begin() + kHeaderSize);
    b[8] = 0xFF; b[9] = 0xFF; b[10] = 0xFF; b[11] = 0x7F;
    expect_reject(b, "exceeds its limit");
  }
  SECTION("flipped payload bit fails the checksum") {
    auto b = good;
    b[kHeaderSize + 3] ^= 0x10;
    expect_reject(b, "checksum");
  }
  SECTION("flipped length fails the checksum") {
    auto b = good;
    b.push_back(0);
    b[8] += 1;
    expect_reject(b, "checksum");
  }
}

TEST_CASE("malformed messages are rejected field by field", "[wire]") {
  auto reframe = [](FrameType t, std::vector<uint8_t> payload) { return Frame{t, std::move(payload)}; };
  SECTION("truncated and trailing bytes") {
    auto f = parse_one(encode(ChunkGet{1, 2}));
    auto t = f;
    t.payload.pop_back();
    REQUIRE_THROWS_WITH(decode_chunk_get(t), Catch::Contains("truncated"));
    t = f;
    t.payload.push_back(0);
    REQUIRE_THROWS_WITH(decode_chunk_get(t), Catch::Contains("trailing"));
  }
  SECTION("wrong frame type for the decoder") {
    auto f = parse_one(encode(ChunkGet{1, 2}));
    REQUIRE_THROWS_WITH(decode_request(f), Catch::Contains("expected REQUEST"));
  }
  SECTION("invalid context ids") {
    REQUIRE_THROWS_AS(encode(Request{"../etc", 1, ""}), ProtocolError);
    REQUIRE_THROWS_AS(encode(Request{"", 1, ""}), ProtocolError);
    REQUIRE_THROWS_AS(encode(Request{"a/b", 1, ""}), ProtocolError);
    // hand-built REQUEST with a slash in the id
    std::vector<uint8_t> p = {3, 0, 'a', '/', 'b', 1, 0, 0, 0, 0, 0};
    REQUIRE_THROWS_WITH(decode_request(reframe(FrameType::kRequest, p)), Catch::Contains("context id"));
  }
  SECTION("manifest consistency") {
    auto f = parse_one(encode(sample_manifest()));
    Manifest m = sample_manifest();
    m.chunks[1].token_begin = 65;  // gap
    REQUIRE_THROWS_WITH(decode_manifest(parse_one(encode(m))), Catch::Contains("contiguous"));
    m = sample_manifest();
    m.num_tokens = 101;
    m.token_ids.push_back(7);
    REQUIRE_THROWS_WITH(decode_manifest(parse_one(encode(m))), Catch::Contains("sum"));
    m = sample_manifest();
    m.levels[0].agreement = 1.5;
    REQUIRE_THROWS_WITH(decode_manifest(parse_one(encode(m))), Catch::Contains("agreement"));
    m = sample_manifest();
    m.levels[1].id = 7;
    REQUIRE_THROWS_WITH(decode_manifest(parse_one(encode(m))), Catch::Contains("duplicate"));
    m = sample_manifest();
    m.profile_hash = "XYZ";
    REQUIRE_THROWS_WITH(decode_manifest(parse_one(encode(m))), Catch::Contains("hex"));
    m = sample_manifest();
    m.chunks[0].level_bytes[0] = 0;
    REQUIRE_THROWS_WITH(decode_manifest(parse_one(encode(m))), Catch::Contains("size"));
    // A chunk count far beyond the payload is caught before allocating.
    auto t = f;
    const size_t count_at = t.payload.size() - (1 + 388) - 2 * (12 + 3 * 4) - 4;  // 100 ids x 31 bits
    t.payload[count_at + 2] = 0x0F;  // 0x000F0002 chunks
    REQUIRE_THROWS_AS(decode_manifest(t), ProtocolError);
  }
  SECTION("manifest token ids") {
    Manifest m = sample_manifest();
    m.token_ids.pop_back();
    REQUIRE_THROWS_WITH(encode(m), Catch::Contains("token id count"));
    m = sample_manifest();
    m.token_ids[3] = -1;
    REQUIRE_THROWS_AS(encode(m), ProtocolError);
    // sample: 100 ids, the largest 2^31 - 1 -> 31 bits each, 388 bytes (4 padding bits), then
    // the (absent) link report's flags byte
    auto f = parse_one(encode(sample_manifest()));
    const size_t width_at = f.payload.size() - 390;
    REQUIRE(f.payload[width_at] == 31);
    auto t = f;
    t.payload[width_at] = 0;
    REQUIRE_THROWS_WITH(decode_manifest(t), Catch::Contains("width"));
    t.payload[width_at] = 32;
    REQUIRE_THROWS_WITH(decode_manifest(t), Catch::Contains("width"));
    t = f;
    t.payload[t.payload.size() - 2] |= 0x80;  // a padding bit
    REQUIRE_THROWS_WITH(decode_manifest(t), Catch::Contains("padding"));
    // ids missing (truncated) or one byte too many (trailing)
    t = f;
    t.payload.pop_back();
    REQUIRE_THROWS_WITH(decode_manifest(t), Catch::Contains("truncated"));
    t = f;
    t.payload.push_back(0);
    REQUIRE_THROWS_WITH(decode_manifest(t), Catch::Contains("trailing"));
    // num_tokens over the hard limit is refused before any chunk or id is read
    t = f;
    const size_t at = 2 + m.context_id.size() + 2 + m.profile_hash.size() + 8;
    const uint32_t big = kMaxManifestTokens + 1;
    for (int i = 0; i < 4; ++i) t.payload[at + size_t(i)] = uint8_t(big >> (8 * i));
    REQUIRE_THROWS_WITH(decode_manifest(t), Catch::Contains("exceeds the limit"));
  }
  SECTION("manifest token ids are bit-packed at the largest id's width") {
    Manifest m = sample_manifest();
    std::mt19937 rng(3);
    for (auto& id : m.token_ids) id = int32_t(rng() % 512);
    m.token_ids[17] = 511;  // 9 bits
    const auto f9 = parse_one(encode(m));
    REQUIRE(decode_manifest(f9).token_ids == m.token_ids);
    for (auto& id : m.token_ids) id = 0;  // all zero: 1 bit each
    const auto f1 = parse_one(encode(m));
    REQUIRE(decode_manifest(f1).token_ids == m.token_ids);
    REQUIRE(f9.payload.size() - f1.payload.size() == (100 * 9 + 7) / 8 - (100 + 7) / 8);
    for (int i = 0; i < 100; ++i) m.token_ids[size_t(i)] = i % 2 ? 0x7FFFFFFF : 0x40000000 + i;
    REQUIRE(decode_manifest(parse_one(encode(m))).token_ids == m.token_ids);
    // docs/PROTOCOL.md's example, byte for byte: ids [5, 2, 7] -> 0x03 0xD5 0x01
    Manifest e = sample_manifest();
    e.num_tokens = 3;
    e.chunks = {{0, 3, 30, {40, 20, 200}}};
    e.token_ids = {5, 2, 7};
    const auto fe = parse_one(encode(e));
    const std::vector<uint8_t> tail(fe.payload.end() - 4, fe.payload.end() - 1);  // (then the report flags)
    REQUIRE(tail == std::vector<uint8_t>{0x03, 0xD5, 0x01});
    REQUIRE(decode_manifest(fe).token_ids == e.token_ids);
  }
  SECTION("error code out of range") {
    std::vector<uint8_t> p = {99, 0, 0, 0};
    REQUIRE_THROWS_WITH(decode_error(reframe(FrameType::kError, p)), Catch::Contains("unknown code"));
  }
  SECTION("random garbage never crashes the reader") {
    std::mt19937 rng(1);
    for (int i = 0; i < 2000; ++i) {
      std::vector<uint8_t> b(size_t(rng() % 64));
      for (auto& x : b) x = uint8_t(rng());
      if (b.size() >= 4 && (i % 2)) std::copy(kMagic.begin(), kMagic.end(), b.begin());
      FrameReader r;
      r.feed(b.data(), b.size());
      try {
        while (auto f = r.next()) {
          (void)f;
        }
      } catch (const ProtocolError&) {
      }
    }
  }
}

TEST_CASE("version 3: the handshake messages round-trip", "[wire][auth]") {
  Hello h{3, 3, "agent", "tenant-1", random_nonce()};
  const auto hh = decode_hello(parse_one(encode(h)));
  REQUIRE(hh.tenant == "tenant-1");
  REQUIRE(hh.client_nonce == h.client_nonce);
  REQUIRE(decode_hello(parse_one(encode(Hello{3, 3, "anonymous", "", {}}))).tenant.empty());
  REQUIRE_THROWS_AS(encode(Hello{3, 3, "a", "../etc"}), ProtocolError);

  HelloAck a{kProtocolVersion, 1u << 20, "srv", AuthMode::kHmacSha256, random_nonce()};
  const auto aa = decode_hello_ack(parse_one(encode(a)));
  REQUIRE(aa.auth == AuthMode::kHmacSha256);
  REQUIRE(aa.server_nonce == a.server_nonce);
  auto bad = parse_one(encode(a));
  bad.payload[2 + 4 + 2 + 3] = 7;  // the auth mode byte after version, max_chunk_bytes, agent "srv"
  REQUIRE_THROWS_WITH(decode_hello_ack(bad), Catch::Contains("authentication mode"));

  const Secret key(32, 0x42);
  const Mac p = client_proof(key, "tenant-1", h.client_nonce, a.server_nonce);
  REQUIRE(macs_equal(decode_auth(parse_one(encode(AuthMsg{p}))).proof, p));
  const Mac q = server_proof(key, "tenant-1", h.client_nonce, a.server_nonce);
  REQUIRE(macs_equal(decode_auth_ok(parse_one(encode(AuthOk{q}))).proof, q));
  // the two directions, other nonces, tenants or keys give other proofs
  REQUIRE_FALSE(macs_equal(p, q));
  REQUIRE_FALSE(macs_equal(p, client_proof(key, "tenant-1", a.server_nonce, h.client_nonce)));
  REQUIRE_FALSE(macs_equal(p, client_proof(key, "tenant-2", h.client_nonce, a.server_nonce)));
  REQUIRE_FALSE(macs_equal(p, client_proof(Secret(32, 0x43), "tenant-1", h.client_nonce, a.server_nonce)));
  // RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?")
  const std::string k2 = "Jefe", m2 = "what do ya want for nothing?";
  const Mac t2 = hmac_sha256(std::span(reinterpret_cast<const uint8_t*>(k2.data()), k2.size()),
                             std::span(reinterpret_cast<const uint8_t*>(m2.data()), m2.size()));
  REQUIRE(to_hex(t2) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST_CASE("version 3: frames are checked by direction and length from the header alone", "[wire]") {
  // A receiver may not send sender frames, and a sender may not send receiver frames.
  auto header_only = [](const std::vector<uint8_t>& f) { return std::vector<uint8_t>(f.begin(), f.begin() + kHeaderSize); };
  FrameReader at_sender(Peer::kReceiver, kMaxPreAuthPayload);
  const auto cd = encode(ChunkData{0, 0, kChunkServed, {}, std::vector<uint8_t>(60 << 20)});
  const auto h = header_only(cd);
  at_sender.feed(h.data(), h.size());
  REQUIRE_THROWS_WITH(at_sender.next(), Catch::Contains("a receiver may not send CHUNK_DATA"));
  FrameReader at_receiver(Peer::kSender, SIZE_MAX);
  const auto get = encode(ChunkGet{1, 2});
  at_receiver.feed(get.data(), get.size());
  REQUIRE_THROWS_WITH(at_receiver.next(), Catch::Contains("a sender may not send CHUNK_GET"));
  // CANCEL (controller) is the receiver's: a sender's is refused, a receiver's read
  FrameReader at_receiver2(Peer::kSender, SIZE_MAX);
  const auto cancel = encode(Cancel{1, kTextLevel});
  at_receiver2.feed(cancel.data(), cancel.size());
  REQUIRE_THROWS_WITH(at_receiver2.next(), Catch::Contains("a sender may not send CANCEL"));
  FrameReader at_sender2(Peer::kReceiver, kMaxPreAuthPayload);
  at_sender2.feed(cancel.data(), cancel.size());
  REQUIRE(at_sender2.next()->type == FrameType::kCancel);
  // ERROR and END go both ways
  for (Peer from : {Peer::kReceiver, Peer::kSender}) {
    FrameReader r(from, kMaxPreAuthPayload);
    const auto e = encode(ErrorMsg{WireErrorCode::kAuth, "x"});
    r.feed(e.data(), e.size());
    REQUIRE(r.next()->type == FrameType::kError);
  }
  // The reader's current limit: a 64 KiB MANIFEST before authentication is refused from its header.
  FrameReader small(Peer::kSender, kMaxPreAuthPayload);
  std::vector<uint8_t> mh = header_only(encode(ChunkData{0, 0, kChunkServed, {}, std::vector<uint8_t>(1 << 16)}));
  small.feed(mh.data(), mh.size());
  REQUIRE_THROWS_WITH(small.next(), Catch::Contains("exceeds the 4096 bytes accepted now"));
  REQUIRE(small.buffered() == kHeaderSize);  // nothing beyond what was fed
  // Every frame type a receiver sends fits the pre-authentication limit.
  for (auto t : {FrameType::kHello, FrameType::kRequest, FrameType::kProfileGet, FrameType::kChunkGet, FrameType::kError,
                 FrameType::kEnd, FrameType::kAuth, FrameType::kCancel})
    REQUIRE(max_payload(t) <= kMaxPreAuthPayload);
}

TEST_CASE("version 3: a frame head plus its shared blob is the whole frame", "[wire]") {
  std::vector<uint8_t> blob(5000);
  for (size_t i = 0; i < blob.size(); ++i) blob[i] = uint8_t(i * 7);
  for (const LinkReport& link : {LinkReport{}, LinkReport{true, false, 1200, 900, 65536, 12500, 4096}}) {
    auto head = encode_chunk_data_head(4, 9, link, blob);
    head.insert(head.end(), blob.begin(), blob.end());
    REQUIRE(head == encode(ChunkData{4, 9, kChunkServed, link, blob}));
  }
  auto ph = encode_profile_head("abc123", blob);
  ph.insert(ph.end(), blob.begin(), blob.end());
  REQUIRE(ph == encode(ProfileData{"abc123", blob}));
}

TEST_CASE("wire ERROR codes and kvstream::ErrorCode map onto each other", "[wire]") {
  using kvstream::ErrorCode;
  for (uint16_t c = 1; c <= uint16_t(WireErrorCode::kBusy); ++c) {
    const auto w = WireErrorCode(c);
    REQUIRE(wire_error_of(error_code_of(w)) == w);  // a round trip keeps every wire code
    const auto e = decode_error(parse_one(encode(ErrorMsg{w, "m"})));
    REQUIRE(e.code == w);
  }
  REQUIRE(error_code_of(WireErrorCode::kAuth) == ErrorCode::kAuth);
  REQUIRE(error_code_of(WireErrorCode::kBusy) == ErrorCode::kResourceExhausted);
  REQUIRE(wire_error_of(ErrorCode::kIo) == WireErrorCode::kInternal);
  const auto err = error_from_wire(WireErrorCode::kUnknownContext, "unknown context 'x'");
  REQUIRE(err.code() == ErrorCode::kUnknownContext);
  REQUIRE_THAT(err.what(), Catch::Contains("sender error: unknown context 'x'"));
}

TEST_CASE("keys files: tenants, secrets, permissions", "[wire][auth]") {
  const std::string dir = (std::filesystem::temp_directory_path() / ("kvstream-keys-" + std::to_string(::getpid()))).string();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/keys";
  add_tenant(path, "alpha");
  add_tenant(path, "beta");
  REQUIRE_THROWS_WITH(add_tenant(path, "alpha"), Catch::Contains("already has tenant"));
  const auto k = Keyring::load(path);
  REQUIRE(k.size() == 2);
  REQUIRE(k.find("alpha")->size() == 32);
  REQUIRE(*k.find("alpha") != *k.find("beta"));
  REQUIRE(k.find("gamma") == nullptr);
  REQUIRE((std::filesystem::status(path).permissions() & std::filesystem::perms::group_read) == std::filesystem::perms::none);
  std::filesystem::permissions(path, std::filesystem::perms::others_read, std::filesystem::perm_options::add);
  REQUIRE_THROWS_WITH(Keyring::load(path), Catch::Contains("accessible by group or others"));
  // malformed lines name the file and line, never a secret
  REQUIRE_THROWS_WITH(Keyring::parse("# c\nalpha 00112233\n", "K"), Catch::Contains("K:2") && Catch::Contains("16..64 bytes"));
  REQUIRE_THROWS_WITH(Keyring::parse("alpha zz" + std::string(30, '0') + "\n", "K"), Catch::Contains("not hex"));
  REQUIRE_THROWS_WITH(Keyring::parse("a/b " + std::string(32, '0') + "\n", "K"), Catch::Contains("invalid tenant"));
  REQUIRE_THROWS_WITH(Keyring::parse("a " + std::string(32, '0') + "\na " + std::string(32, '1') + "\n", "K"),
                      Catch::Contains("twice"));
  REQUIRE(Keyring::parse("  a " + std::string(32, '0') + "  # comment\n\n", "K").size() == 1);
  write_new_secret(dir + "/secret");
  REQUIRE(load_secret_file(dir + "/secret").size() == 32);
  REQUIRE_THROWS(write_new_secret(dir + "/secret"));  // never overwritten
  std::filesystem::remove_all(dir);
}

// ---- controller (issue 14): CANCEL, the link report, CHUNK_DATA status ----
TEST_CASE("CANCEL, the sender's link report and CHUNK_DATA's status round-trip and are validated", "[wire]") {
  Cancel c{7, kTextLevel};
  const auto f = parse_one(encode(c));
  REQUIRE(f.type == FrameType::kCancel);
  REQUIRE(std::string(frame_type_name(f.type)) == "CANCEL");
  REQUIRE(decode_cancel(f).index == 7);
  REQUIRE(decode_cancel(f).replacement == kTextLevel);
  REQUIRE(decode_cancel(parse_one(encode(Cancel{2, kNoReplacement}))).replacement == kNoReplacement);
  REQUIRE(max_payload(FrameType::kCancel) == 16);

  LinkReport r;
  r.valid = true;
  r.app_limited = true;
  r.srtt_us = 12345;
  r.min_rtt_us = 2345;
  r.cwnd_bytes = 654830;
  r.delivery_kBps = 1'250'000;
  r.notsent_bytes = 77;
  ChunkData cd;
  cd.index = 1;
  cd.level = 2;
  cd.link = r;
  cd.blob = {1, 2, 3};
  const auto bytes = encode(cd);
  const ChunkData back = decode_chunk_data(parse_one(bytes));
  REQUIRE(back.link == r);
  REQUIRE(back.status == kChunkServed);
  // cheap on the wire: 21 bytes with a report, 1 without
  ChunkData bare = cd;
  bare.link = LinkReport{};
  REQUIRE(bytes.size() - encode(bare).size() == kLinkReportWireBytes - 1);
  REQUIRE(encode(bare).size() == 3 + 4 + 2 + 1 + 1 + 4 + kHeaderSize);
  REQUIRE(encode(cd).size() == 3 + kChunkFrameOverhead);  // what the planner counts

  ChunkData cancelled;
  cancelled.index = 4;
  cancelled.level = 0;
  cancelled.status = kChunkCancelled;
  REQUIRE(decode_chunk_data(parse_one(encode(cancelled))).status == kChunkCancelled);
  cancelled.blob = {1};
  REQUIRE_THROWS_AS(encode(cancelled), ProtocolError);

  // malformed: unknown status, unknown report flags, a truncated report
  auto payload = [](std::vector<uint8_t> frame) { return std::vector<uint8_t>(frame.begin() + kHeaderSize, frame.end()); };
  auto p = payload(encode(bare));
  p[6] = 9;  // status
  REQUIRE_THROWS_WITH(decode_chunk_data(Frame{FrameType::kChunkData, p}), Catch::Contains("status"));
  p = payload(encode(bare));
  p[7] = 4;  // report flags
  REQUIRE_THROWS_WITH(decode_chunk_data(Frame{FrameType::kChunkData, p}), Catch::Contains("flags"));
  p = payload(encode(cd));
  p.resize(7 + 10);
  REQUIRE_THROWS_WITH(decode_chunk_data(Frame{FrameType::kChunkData, p}), Catch::Contains("truncated"));
  p = payload(encode(Cancel{1, 2}));
  p.push_back(0);
  REQUIRE_THROWS_WITH(decode_cancel(Frame{FrameType::kCancel, p}), Catch::Contains("trailing"));

  // the manifest carries a report too
  Manifest m = sample_manifest();
  m.link = r;
  REQUIRE(decode_manifest(parse_one(encode(m))).link == r);
}
