// Relay end to end on loopback with real sockets: a short bulk transfer against the simulator,
// delay in both directions, half-close propagation, peers dropping mid-transfer, a dead upstream,
// connections sharing the bottleneck, clean stop, and the fault mode (cut, corrupt, stall). Only lower bounds on time are asserted (the
// relay can never be faster than the link), with generous upper bounds against hangs.
#include <catch2/catch.hpp>

#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <poll.h>

#include <chrono>
#include <set>
#include <string>
#include <thread>

#include "bench/bulk.h"
#include "netsim/relay.h"

using namespace kvstream::netsim;
using asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;
using SteadyTime = std::chrono::steady_clock;

namespace {

// Coroutine lambdas are kept in named variables: a coroutine's captures live in the closure, which
// must outlive the coroutine.
// Runs coroutines on one io_context with a hard deadline (fails the test instead of hanging).
struct Harness {
  asio::io_context io;
  tcp::acceptor sender_acceptor{io, tcp::endpoint(asio::ip::address_v4::loopback(), 0)};
  std::vector<std::string> errors;
  int running = 0;

  std::uint16_t sender_port() const { return sender_acceptor.local_endpoint().port(); }
  void spawn(awaitable<void> a) {
    ++running;
    asio::co_spawn(io, std::move(a), [this](std::exception_ptr e) {
      --running;
      if (e) try {
          std::rethrow_exception(e);
        } catch (const std::exception& x) {
          errors.push_back(x.what());
        }
    });
  }
  void run(double seconds) {
    io.run_for(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(seconds)));
    INFO("coroutines still running after the deadline: " << running);
    CHECK(running == 0);
    for (auto& e : errors) FAIL_CHECK(e);
  }
};

RelayConfig config(const std::string& trace, std::uint16_t sender_port, double delay_ms = 0) {
  RelayConfig c;
  c.trace = Trace::load(trace);
  c.connect_port = sender_port;
  c.delay_ns = seconds_to_ns(delay_ms / 1e3);
  return c;
}

awaitable<std::string> read_to_eof(tcp::socket& s) {
  std::string out;
  char buf[4096];
  for (;;) {
    auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), asio::experimental::as_tuple(use_awaitable));
    out.append(buf, n);
    if (ec == asio::error::eof) co_return out;
    if (ec) throw std::system_error(ec);
  }
}

}  // namespace

TEST_CASE("relay: bulk transfer over a const trace matches capacity and the simulator", "[netsim][relay]") {
  BulkOptions o;
  o.bytes = 2'500'000;  // 1 s at 20 Mbit/s
  o.delay_ns = seconds_to_ns(0.01);
  o.timeout_s = 20;
  const BulkResult r = run_bulk_transfer(Trace::load("const:20mbit"), o);
  CHECK(r.data_ok);
  CHECK(r.bytes == 2'500'000);
  CHECK(r.relay_s >= 0.99 * (2'500'000 * 8 / 20e6 + 0.01));  // cannot beat the link
  CHECK(r.relay_s < 5.0);
  CHECK(r.sim_vs_relay == Approx(1.0).margin(0.25));
  CHECK(r.efficiency > 0.75);
  CHECK(r.efficiency <= 1.0);
  CHECK(r.relay_stats["bytes_down"] == 2'500'000);
  // the receiver never half-closes, so the relay may be stopped before it sees the EOF
  CHECK_THAT(r.relay_stats["per_connection"][0]["end_reason"].get<std::string>(), !Catch::StartsWith("reset"));
}

TEST_CASE("relay: delays both directions and propagates half-close both ways", "[netsim][relay]") {
  Harness h;
  Relay relay(config("const:100mbit", h.sender_port(), 50));
  relay.start();
  bool sender_saw_eof = false;
  std::string response;
  double rtt = 0;
  auto co1 = [&]() -> awaitable<void> {  // sender: read the request to EOF, answer, close
    tcp::socket s = co_await h.sender_acceptor.async_accept(use_awaitable);
    const std::string req = co_await read_to_eof(s);
    sender_saw_eof = true;
    const std::string resp = "response to " + req;
    co_await asio::async_write(s, asio::buffer(resp), use_awaitable);
    s.shutdown(tcp::socket::shutdown_send);
  };
  h.spawn(co1());
  auto co2 = [&]() -> awaitable<void> {  // receiver: request, half-close, read the response to EOF
    tcp::socket s(h.io);
    co_await s.async_connect({asio::ip::address_v4::loopback(), relay.port()}, use_awaitable);
    const auto t0 = SteadyTime::now();
    co_await asio::async_write(s, asio::buffer(std::string("GET kv")), use_awaitable);
    s.shutdown(tcp::socket::shutdown_send);
    response = co_await read_to_eof(s);
    rtt = std::chrono::duration<double>(SteadyTime::now() - t0).count();
  };
  h.spawn(co2());
  h.run(10);
  CHECK(sender_saw_eof);
  CHECK(response == "response to GET kv");
  CHECK(rtt >= 0.1);  // 50 ms each way
  CHECK(rtt < 5.0);
  relay.stop();
  const auto st = relay.stats();
  REQUIRE(st.per_connection.size() == 1);
  CHECK(st.per_connection[0].end_reason == "eof");
  CHECK(st.bytes_up == 6);
  CHECK(st.bytes_down == response.size());
}

TEST_CASE("relay: sender dropping mid-transfer resets the receiver, relay keeps serving", "[netsim][relay]") {
  Harness h;
  Relay relay(config("const:8mbit", h.sender_port(), 5));
  relay.start();
  std::uint64_t got = 0;
  std::string receiver_error;
  auto co3 = [&]() -> awaitable<void> {
    tcp::socket s = co_await h.sender_acceptor.async_accept(use_awaitable);
    std::vector<char> chunk(200'000, 'x');
    co_await asio::async_write(s, asio::buffer(chunk), use_awaitable);
    asio::steady_timer t(h.io, std::chrono::milliseconds(100));
    co_await t.async_wait(use_awaitable);
    s.set_option(asio::socket_base::linger(true, 0));
    s.close();  // RST mid-transfer
  };
  h.spawn(co3());
  auto co4 = [&]() -> awaitable<void> {
    tcp::socket s(h.io);
    co_await s.async_connect({asio::ip::address_v4::loopback(), relay.port()}, use_awaitable);
    char buf[8192];
    for (;;) {
      auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), asio::experimental::as_tuple(use_awaitable));
      got += n;
      if (ec) {
        receiver_error = ec.message();
        break;
      }
    }
  };
  h.spawn(co4());
  h.run(10);
  CHECK(got < 200'000);  // the drop must not look like a complete transfer
  CHECK(receiver_error != "End of file");
  CHECK_FALSE(receiver_error.empty());
  // the same relay still carries a new connection
  std::string reply;
  h.io.restart();
  auto co5 = [&]() -> awaitable<void> {
    tcp::socket s = co_await h.sender_acceptor.async_accept(use_awaitable);
    co_await asio::async_write(s, asio::buffer(std::string("still alive")), use_awaitable);
    s.shutdown(tcp::socket::shutdown_send);
    co_await read_to_eof(s);
  };
  h.spawn(co5());
  auto co6 = [&]() -> awaitable<void> {
    tcp::socket s(h.io);
    co_await s.async_connect({asio::ip::address_v4::loopback(), relay.port()}, use_awaitable);
    reply = co_await read_to_eof(s);
    s.shutdown(tcp::socket::shutdown_send);
  };
  h.spawn(co6());
  h.run(10);
  CHECK(reply == "still alive");
  relay.stop();
  const auto st = relay.stats();
  REQUIRE(st.per_connection.size() == 2);
  CHECK_THAT(st.per_connection[0].end_reason, Catch::StartsWith("reset"));
  CHECK(st.per_connection[1].end_reason == "eof");
}

TEST_CASE("relay: receiver dropping mid-transfer stops the sender", "[netsim][relay]") {
  Harness h;
  Relay relay(config("const:8mbit", h.sender_port()));
  relay.start();
  std::string sender_error;
  std::uint64_t sent = 0;
  auto co7 = [&]() -> awaitable<void> {
    tcp::socket s = co_await h.sender_acceptor.async_accept(use_awaitable);
    std::vector<char> chunk(64 * 1024, 'y');
    for (int i = 0; i < 2000; ++i) {  // 128 MB: far more than any buffering, at 1 MB/s
      auto [ec, n] = co_await asio::async_write(s, asio::buffer(chunk), asio::experimental::as_tuple(use_awaitable));
      sent += n;
      if (ec) {
        sender_error = ec.message();
        co_return;
      }
    }
  };
  h.spawn(co7());
  auto co8 = [&]() -> awaitable<void> {
    tcp::socket s(h.io);
    co_await s.async_connect({asio::ip::address_v4::loopback(), relay.port()}, use_awaitable);
    char buf[8192];
    co_await asio::async_read(s, asio::buffer(buf), use_awaitable);
    s.set_option(asio::socket_base::linger(true, 0));
    s.close();
  };
  h.spawn(co8());
  h.run(15);
  CHECK_FALSE(sender_error.empty());
  CHECK(sent < 2000ull * 64 * 1024);  // back-pressure: the relay never swallowed it all
  relay.stop();
}

TEST_CASE("relay: an unreachable sender closes the receiver promptly", "[netsim][relay]") {
  std::uint16_t dead_port;
  {
    asio::io_context io;
    tcp::acceptor a(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    dead_port = a.local_endpoint().port();
  }  // closed: nothing listens there now
  Harness h;
  Relay relay(config("const:10mbit", dead_port));
  relay.start();
  bool ended = false;
  auto co9 = [&]() -> awaitable<void> {
    tcp::socket s(h.io);
    auto [cec] = co_await s.async_connect({asio::ip::address_v4::loopback(), relay.port()},
                                          asio::experimental::as_tuple(use_awaitable));
    if (cec) {  // the relay may reset the connection before connect() reports success
      ended = true;
      co_return;
    }
    char buf[16];
    auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), asio::experimental::as_tuple(use_awaitable));
    ended = ec && n == 0;
  };
  h.spawn(co9());
  h.sender_acceptor.close();
  h.run(10);
  CHECK(ended);
  relay.stop();
  CHECK_THAT(relay.stats().per_connection.at(0).end_reason, Catch::StartsWith("connect failed"));
}

TEST_CASE("relay: concurrent connections share one bottleneck", "[netsim][relay]") {
  Harness h;
  Relay relay(config("const:16mbit", h.sender_port()));
  relay.start();
  const std::size_t each = 1'000'000;
  std::vector<double> done;
  auto co10 = [&]() -> awaitable<void> {
    tcp::socket s = co_await h.sender_acceptor.async_accept(use_awaitable);
    std::vector<char> data(each, 'z');
    co_await asio::async_write(s, asio::buffer(data), use_awaitable);
    s.shutdown(tcp::socket::shutdown_send);
    co_await read_to_eof(s);
  };
  const auto t0 = SteadyTime::now();
  auto co11 = [&]() -> awaitable<void> {
    tcp::socket s(h.io);
    co_await s.async_connect({asio::ip::address_v4::loopback(), relay.port()}, use_awaitable);
    const std::string got = co_await read_to_eof(s);
    CHECK(got.size() == each);
    s.shutdown(tcp::socket::shutdown_send);
    done.push_back(std::chrono::duration<double>(SteadyTime::now() - t0).count());
  };
  for (int i = 0; i < 2; ++i) h.spawn(co10());
  for (int i = 0; i < 2; ++i) h.spawn(co11());
  h.run(20);
  REQUIRE(done.size() == 2);
  // 2 MB over 16 Mbit/s takes 1 s: the later finisher cannot be earlier than that
  CHECK(std::max(done[0], done[1]) >= 0.97);
  relay.stop();
  const auto st = relay.stats();
  CHECK(st.connections == 2);
  CHECK(st.bytes_down == 2 * each);
  CHECK_FALSE(st.per_second.empty());
  CHECK(st.per_second[0].capacity_mbps == Approx(16).margin(0.1));
  CHECK(st.to_json()["per_second"].size() == st.per_second.size());
}

TEST_CASE("relay: stop() with open, idle and busy connections returns", "[netsim][relay]") {
  Harness h;
  auto relay = std::make_unique<Relay>(config("const:1mbit", h.sender_port(), 20));
  relay->start();
  tcp::socket up(h.io), down(h.io);
  down.connect({asio::ip::address_v4::loopback(), relay->port()});
  h.sender_acceptor.accept(up);
  std::vector<char> data(300'000, 'q');
  asio::write(up, asio::buffer(data));  // far more than 1 Mbit/s delivers before stop()
  const auto t0 = SteadyTime::now();
  relay->stop();
  relay->stop();  // idempotent
  relay.reset();
  CHECK(std::chrono::duration<double>(SteadyTime::now() - t0).count() < 2.0);
  char buf[1024];
  asio::error_code ec;
  std::size_t total = 0;
  while (!ec) total += down.read_some(asio::buffer(buf), ec);  // must end (reset), not hang
  CHECK(total < data.size());
}

TEST_CASE("relay: rejects unbounded or unset configuration", "[netsim][relay]") {
  RelayConfig c;
  c.connect_port = 1;
  CHECK_THROWS_AS(Relay(c), TraceError);
  c.trace = Trace::load("const:1mbit");
  c.queue_bytes = 0;
  CHECK_THROWS_AS(Relay(c), std::invalid_argument);
  c.queue_bytes = 1000;
  c.connect_port = 0;
  CHECK_THROWS_AS(Relay(c), std::invalid_argument);
}

namespace {
// One connection through a fault-mode relay: an upstream that sends `n` pattern bytes (then waits
// for the receiver to close), and a receiver that reads until the stream ends, resets or stays
// silent for 1 s. Returns what arrived and how it ended.
struct FaultRun {
  std::string got;
  bool timed_out = false;  // silence, not an EOF or reset
  std::int64_t offset = -1;
};
char pattern(std::size_t i) { return static_cast<char>((i * 31 + (i >> 9)) & 0xFF); }

FaultRun fault_run(FaultKind kind, std::uint64_t seed, std::size_t n) {
  asio::io_context io;
  tcp::acceptor acc(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  std::thread up([&] {
    tcp::socket s(io);
    acc.accept(s);
    std::string data(n, 0);
    for (std::size_t i = 0; i < n; ++i) data[i] = pattern(i);
    asio::error_code ec;
    asio::write(s, asio::buffer(data), ec);
    s.shutdown(tcp::socket::shutdown_send, ec);
    char b[256];
    while (!ec) s.read_some(asio::buffer(b), ec);  // until the relay closes its side
  });
  RelayConfig c = config("const:1gbit", acc.local_endpoint().port());
  c.fault = FaultConfig{kind, seed, 1000, 150000};
  Relay relay(c);
  relay.start();
  FaultRun r;
  {
    asio::io_context cio;
    tcp::socket s(cio);
    s.connect(tcp::endpoint(asio::ip::address_v4::loopback(), relay.port()));
    char buf[65536];
    for (;;) {
      pollfd p{s.native_handle(), POLLIN, 0};
      if (::poll(&p, 1, 1000) == 0) {  // 1 s of silence
        r.timed_out = true;
        break;
      }
      asio::error_code ec;
      const std::size_t k = s.read_some(asio::buffer(buf), ec);
      r.got.append(buf, k);
      if (ec) break;  // EOF or reset
    }
  }  // the receiver closes
  up.join();
  relay.stop();
  r.offset = relay.stats().per_connection.at(0).fault_offset;
  CHECK(relay.stats().per_connection.at(0).fault_struck);
  return r;
}
}  // namespace

TEST_CASE("relay fault mode: cut, corrupt and stall at a seeded offset", "[netsim][relay][fault]") {
  const std::size_t n = 200000;
  FaultConfig f{FaultKind::kCut, 7, 1000, 150000};
  CHECK(fault_offset(f, 1) == fault_offset(f, 1));  // reproducible
  std::set<std::uint64_t> seen;
  for (std::uint32_t id = 1; id <= 50; ++id) {
    const auto at = fault_offset(f, id);
    CHECK(at >= 1000);
    CHECK(at < 150000);
    seen.insert(at);
  }
  CHECK(seen.size() > 40);  // spread over the range
  CHECK(parse_fault_kind("stall") == FaultKind::kStall);
  CHECK_THROWS_AS(parse_fault_kind("melt"), std::invalid_argument);
  SECTION("cut: exactly `offset` bytes arrive, then the connection is reset") {
    const auto r = fault_run(FaultKind::kCut, 7, n);
    REQUIRE(r.offset == std::int64_t(fault_offset(f, 1)));
    REQUIRE(r.got.size() == std::size_t(r.offset));
    REQUIRE_FALSE(r.timed_out);
    std::string expect(r.got.size(), 0);
    for (std::size_t i = 0; i < expect.size(); ++i) expect[i] = pattern(i);
    REQUIRE(r.got == expect);
  }
  SECTION("corrupt: every byte arrives, the one at `offset` changed") {
    const auto r = fault_run(FaultKind::kCorrupt, 11, n);
    REQUIRE(r.got.size() == n);
    std::vector<std::size_t> diff;
    for (std::size_t i = 0; i < n; ++i)
      if (r.got[i] != pattern(i)) diff.push_back(i);
    REQUIRE(diff == std::vector<std::size_t>{std::size_t(r.offset)});
  }
  SECTION("stall: `offset` bytes arrive, then silence with the connection open") {
    const auto r = fault_run(FaultKind::kStall, 13, n);
    REQUIRE(r.got.size() == std::size_t(r.offset));
    REQUIRE(r.timed_out);
  }
}
