// Blocking protocol peers for tests, with a receive timeout (so that a peer that never answers
// fails the test instead of hanging it): RawClient sends hand-made frames to a sender and reads
// what it answers (authenticate() runs the version-3 handshake as a tenant); FakeSender accepts
// one receiver and runs a script of hand-made frames against it.
#pragma once
#include <poll.h>
#include <sys/socket.h>

#include <asio.hpp>
#include <catch2/catch.hpp>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "streamer/auth.h"
#include "streamer/wire.h"

namespace kvstream::testing {

struct RawClient {
  // rcvbuf > 0: the socket's receive buffer (set before connecting), e.g. small for a client that
  // never reads.
  explicit RawClient(uint16_t port, double timeout_s = 10, int rcvbuf = 0, streamer::Peer from = streamer::Peer::kSender)
      : sock(io), reader(from, SIZE_MAX) {
    sock.open(asio::ip::tcp::v4());
    if (rcvbuf > 0) sock.set_option(asio::socket_base::receive_buffer_size(rcvbuf));
    sock.connect({asio::ip::make_address("127.0.0.1"), port});
    timeout_ms = int(timeout_s * 1e3);
  }
  RawClient(asio::ip::tcp::socket accepted, double timeout_s, streamer::Peer from)
      : sock(std::move(accepted)), reader(from, SIZE_MAX), timeout_ms(int(timeout_s * 1e3)) {}
  void send(const std::vector<uint8_t>& bytes) { asio::write(sock, asio::buffer(bytes)); }
  // The next frame; nullopt at EOF, on a reset or after the timeout.
  std::optional<streamer::Frame> next() {
    while (true) {
      if (auto f = reader.next()) return f;
      std::array<uint8_t, 65536> buf{};
      asio::error_code ec;
      if (!readable()) return std::nullopt;
      const size_t n = sock.read_some(asio::buffer(buf), ec);
      if (ec) return std::nullopt;
      reader.feed(buf.data(), n);
    }
  }
  // Reads until an ERROR frame (returned) or the end of the stream (nullopt).
  std::optional<streamer::ErrorMsg> first_error() {
    while (auto f = next())
      if (f->type == streamer::FrameType::kError) return streamer::decode_error(*f);
    return std::nullopt;
  }
  // Whether the sender closed the connection (EOF or reset, not a timeout) within the timeout.
  bool closed_by_peer() {
    std::array<uint8_t, 4096> buf{};
    while (true) {
      asio::error_code ec;
      if (!readable()) return false;  // still open after the timeout
      sock.read_some(asio::buffer(buf), ec);
      if (ec) return ec == asio::error::eof || ec == asio::error::connection_reset;
    }
  }
  // Waits up to the timeout for bytes (or EOF) to read. (asio's blocking reads retry on EAGAIN, so
  // SO_RCVTIMEO alone does not bound them.)
  bool readable() {
    pollfd p{sock.native_handle(), POLLIN, 0};
    return ::poll(&p, 1, timeout_ms) > 0;
  }
  // HELLO + AUTH as `tenant`; REQUIREs the sender's AUTH_OK to verify.
  void authenticate(const std::string& tenant, const std::vector<uint8_t>& key) {
    streamer::Hello h;
    h.agent = "raw-test";
    h.tenant = tenant;
    h.client_nonce = streamer::random_nonce();
    send(streamer::encode(h));
    auto ack = next();
    REQUIRE(ack);
    REQUIRE(ack->type == streamer::FrameType::kHelloAck);
    const auto a = streamer::decode_hello_ack(*ack);
    REQUIRE(a.auth == streamer::AuthMode::kHmacSha256);
    send(streamer::encode(streamer::AuthMsg{streamer::client_proof(key, tenant, h.client_nonce, a.server_nonce)}));
    auto ok = next();
    REQUIRE(ok);
    REQUIRE(ok->type == streamer::FrameType::kAuthOk);
    REQUIRE(streamer::macs_equal(streamer::decode_auth_ok(*ok).proof,
                                 streamer::server_proof(key, tenant, h.client_nonce, a.server_nonce)));
  }
  asio::io_context io;
  asio::ip::tcp::socket sock;
  streamer::FrameReader reader;
  int timeout_ms = 10000;  // per read
};

// Accepts one connection on a free loopback port and runs `script` on it (a RawClient reading the
// receiver's frames) in its own thread; the destructor joins it.
struct FakeSender {
  explicit FakeSender(std::function<void(RawClient&)> script) : acceptor(io, {asio::ip::make_address("127.0.0.1"), 0}) {
    port = acceptor.local_endpoint().port();
    thread = std::thread([this, script = std::move(script)] {
      asio::error_code ec;
      asio::ip::tcp::socket s(io);
      acceptor.accept(s, ec);
      if (ec) return;
      RawClient c(std::move(s), 10, streamer::Peer::kReceiver);
      try {
        script(c);
      } catch (const std::exception&) {
        // the receiver went away mid-script: what the test checks is the receiver's side
      }
    });
  }
  ~FakeSender() {
    asio::error_code ec;
    ::shutdown(acceptor.native_handle(), SHUT_RDWR);  // wakes a blocking accept (Linux)
    acceptor.close(ec);
    if (thread.joinable()) thread.join();
  }
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor;
  uint16_t port = 0;
  std::thread thread;
};

}  // namespace kvstream::testing
