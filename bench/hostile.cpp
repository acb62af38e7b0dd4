// Hostile connections (see hostile.h).
#include "bench/hostile.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <asio.hpp>
#include <random>
#include <unordered_set>

#include "streamer/auth.h"
#include "streamer/wire.h"

namespace kvstream::streamer::bench {

using asio::ip::tcp;

const char* hostile_kind_name(HostileKind k) {
  switch (k) {
    case HostileKind::kSilent: return "silent";
    case HostileKind::kSlow: return "slow_1_byte_per_s";
    case HostileKind::kOversized: return "oversized_header";
    case HostileKind::kWrongDirection: return "wrong_direction";
    case HostileKind::kGarbage: return "garbage";
    case HostileKind::kRepeatHello: return "repeated_hello";
    case HostileKind::kNeverReading: return "never_reading";
  }
  return "?";
}

namespace {
using Bytes = std::shared_ptr<std::vector<uint8_t>>;

struct KindStats {
  std::atomic<uint64_t> connects{0}, dropped{0}, errors{0}, connect_failures{0};
};

std::vector<uint8_t> bare_header(FrameType t, uint32_t len) {
  std::vector<uint8_t> h = {'K', 'V', 'S', 'P', uint8_t(kProtocolVersion), 0, uint8_t(t), 0};
  for (int i = 0; i < 4; ++i) h.push_back(uint8_t(len >> (8 * i)));
  for (int i = 0; i < 4; ++i) h.push_back(0);
  return h;
}

std::vector<uint8_t> small_manifest() {
  Manifest m;
  m.context_id = "x";
  m.profile_hash = "00";
  m.num_tokens = 1;
  m.levels = {{0, "l", 1.0, 0.0}};
  m.chunks = {{0, 1, 0, {10}}};
  m.token_ids = {0};
  return encode(m);
}
}  // namespace

struct HostileLoad::Impl : std::enable_shared_from_this<HostileLoad::Impl> {
  explicit Impl(HostileOptions o) : opt(std::move(o)), rng(opt.seed) {}
  HostileOptions opt;
  asio::io_context io;
  std::unique_ptr<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;
  std::mt19937_64 rng;
  std::array<KindStats, kHostileKinds> kinds;
  std::atomic<int> open{0};
  bool stopping = false;

  struct Conn : std::enable_shared_from_this<Conn> {
    Conn(Impl* i, HostileKind k) : impl(i), kind(k), sock(i->io), timer(i->io) {}
    Impl* impl;
    HostileKind kind;
    tcp::socket sock;
    asio::steady_timer timer;
    std::array<uint8_t, 4096> rx{};
    FrameReader reader{Peer::kSender, 1u << 20};
    Nonce nonce{};
    std::vector<uint8_t> trickle;
    size_t trickled = 0;
    bool connected = false, done = false;
  };
  std::unordered_set<std::shared_ptr<Conn>> conns;

  void open_conn(HostileKind k, double delay_s) {
    auto c = std::make_shared<Conn>(this, k);
    conns.insert(c);
    c->timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(delay_s)));
    c->timer.async_wait([this, c](const asio::error_code& ec) {
      if (ec || stopping) return;
      c->sock.open(tcp::v4());
      if (c->kind == HostileKind::kNeverReading) c->sock.set_option(asio::socket_base::receive_buffer_size(4096));
      c->sock.async_connect({asio::ip::make_address(opt.host), opt.port}, [this, c](const asio::error_code& e) {
        if (stopping) return;
        auto& ks = kinds[size_t(c->kind)];
        if (e) {
          ++ks.connect_failures;
          return replace(c);
        }
        ++ks.connects;
        ++open;
        c->connected = true;
        behave(c);
      });
    });
  }

  void send(const std::shared_ptr<Conn>& c, std::vector<uint8_t> bytes) {
    auto b = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
    asio::async_write(c->sock, asio::buffer(*b), [b](const asio::error_code&, size_t) {});
  }

  // Reads (and counts ERROR frames) until the sender drops the connection.
  void watch(const std::shared_ptr<Conn>& c) {
    c->sock.async_read_some(asio::buffer(c->rx), [this, c](const asio::error_code& ec, size_t n) {
      if (ec) return dropped(c);
      try {
        c->reader.feed(c->rx.data(), n);
        while (auto f = c->reader.next()) {
          if (f->type == FrameType::kError) ++kinds[size_t(c->kind)].errors;
          if (f->type == FrameType::kHelloAck && c->kind == HostileKind::kNeverReading) return authenticate(c, *f);
        }
      } catch (const std::exception&) {
      }
      watch(c);
    });
  }

  void authenticate(const std::shared_ptr<Conn>& c, const Frame& ack_frame) {
    const HelloAck a = decode_hello_ack(ack_frame);
    std::vector<uint8_t> out = encode(AuthMsg{client_proof(opt.key, opt.tenant, c->nonce, a.server_nonce)});
    auto add = [&](const std::vector<uint8_t>& f) { out.insert(out.end(), f.begin(), f.end()); };
    add(encode(Request{opt.context, 1000, "never-reading"}));
    for (int rep = 0; rep < 64; ++rep)
      for (uint32_t i = 0; i < opt.chunks; ++i) add(encode(ChunkGet{i, opt.level}));
    send(c, std::move(out));
    // From now on it never reads: the sender's reset (write timeout) shows as a socket error; one
    // refused with ERROR(BUSY) is only closed (no error shows), so each is replaced after 30 s.
    c->sock.async_wait(tcp::socket::wait_error, [this, c](const asio::error_code&) { dropped(c); });
    c->timer.expires_after(std::chrono::seconds(30));
    c->timer.async_wait([this, c](const asio::error_code& ec) {
      if (!ec) dropped(c);
    });
  }

  void tick_every(const std::shared_ptr<Conn>& c, double s, std::function<void()> f) {
    c->timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(s)));
    c->timer.async_wait([this, c, s, f](const asio::error_code& ec) {
      if (ec || c->done || stopping) return;
      f();
      tick_every(c, s, f);
    });
  }

  void behave(const std::shared_ptr<Conn>& c) {
    Hello h;
    h.agent = "hostile";
    h.tenant = opt.tenant;
    c->nonce = h.client_nonce = random_nonce();
    switch (c->kind) {
      case HostileKind::kSilent: break;
      case HostileKind::kSlow:
        c->trickle = encode(h);
        tick_every(c, 1.0, [this, c] {
          if (c->trickled < c->trickle.size()) send(c, {c->trickle[c->trickled++]});
        });
        break;
      case HostileKind::kOversized:
        // a header claiming 64 MiB or over its type's limit (refused at once), or a REQUEST header
        // of the largest valid length whose payload then comes at 1 byte/s (held until the
        // handshake timeout)
        switch (rng() % 3) {
          case 0: send(c, bare_header(FrameType::kChunkData, (64u << 20) - 1)); break;
          case 1: send(c, bare_header(FrameType::kHello, 4000)); break;
          default:
            send(c, bare_header(FrameType::kRequest, 1024));
            tick_every(c, 1.0, [this, c] { send(c, {0}); });
        }
        break;
      case HostileKind::kWrongDirection:
        send(c, rng() % 2 ? small_manifest() : encode(ChunkData{0, 0, kChunkServed, {}, std::vector<uint8_t>(1024, 7)}));
        break;
      case HostileKind::kGarbage: {
        std::vector<uint8_t> g(256);
        for (auto& b : g) b = uint8_t(rng());
        send(c, std::move(g));
        break;
      }
      case HostileKind::kRepeatHello:
        tick_every(c, 0.2, [this, c, h] { send(c, encode(h)); });
        break;
      case HostileKind::kNeverReading: send(c, encode(h)); break;
    }
    watch(c);
  }

  void dropped(const std::shared_ptr<Conn>& c) {
    if (c->done) return;
    c->done = true;
    if (c->connected) {
      --open;
      ++kinds[size_t(c->kind)].dropped;
    }
    replace(c);
  }

  void replace(const std::shared_ptr<Conn>& c) {
    c->done = true;
    asio::error_code ec;
    c->timer.cancel();
    c->sock.close(ec);
    if (stopping) return;
    conns.erase(c);
    open_conn(c->kind, opt.reconnect_s);
  }
};

HostileLoad::HostileLoad(HostileOptions o) : impl_(std::make_shared<Impl>(std::move(o))) {}
HostileLoad::~HostileLoad() { stop(); }

void HostileLoad::start() {
  auto& I = *impl_;
  I.work = std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(I.io.get_executor());
  // Spread the first connects over a second so that the sender's listen queue keeps up.
  for (int i = 0; i < I.opt.connections; ++i)
    I.open_conn(HostileKind(i % kHostileKinds), double(i) / std::max(1, I.opt.connections));
  I.thread = std::thread([impl = impl_] {
    // The attackers stand for other machines: on a shared test machine their generator yields to
    // the sender and the honest receivers (a nice value of +10; failure to set it is harmless).
    ::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), 10);
    impl->io.run();
  });
}

void HostileLoad::stop() {
  auto& I = *impl_;
  if (!I.thread.joinable()) return;
  asio::post(I.io, [impl = impl_] {
    impl->stopping = true;
    for (auto& c : impl->conns) {
      asio::error_code ec;
      c->timer.cancel();
      c->sock.close(ec);
    }
    impl->work.reset();
    impl->io.stop();
  });
  I.thread.join();
}

int HostileLoad::open_now() const { return impl_->open; }

nlohmann::json HostileLoad::stats() const {
  nlohmann::json j = nlohmann::json::object();
  for (int k = 0; k < kHostileKinds; ++k) {
    const auto& s = impl_->kinds[size_t(k)];
    j[hostile_kind_name(HostileKind(k))] = {{"connects", s.connects.load()},
                                            {"dropped_by_sender", s.dropped.load()},
                                            {"error_frames", s.errors.load()},
                                            {"connect_failures", s.connect_failures.load()}};
  }
  return j;
}

}  // namespace kvstream::streamer::bench
