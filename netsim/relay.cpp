// netsim/relay.cpp — shaping TCP relay: one io_context thread, one shared LinkModel, one timer.
//
// Data path per connection (Session):
//   forward  (sender -> receiver): read `up` (only into room left in the shared link queue) ->
//            LinkModel::enqueue -> timer: LinkModel::advance gives departures -> released at
//            departure + delay -> written to `down`.
//   reverse  (receiver -> sender): read `down` -> released at read time + delay -> written to `up`.
// Bytes live in per-direction chunk queues until written; memory is bounded by the link queue,
// capacity x delay, and the per-direction write backlog limit.
#include "netsim/relay.h"

#include <algorithm>
#include <asio.hpp>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace kvstream::netsim {

using asio::ip::tcp;
using SteadyTime = std::chrono::steady_clock;

namespace {
constexpr std::size_t kReadChunk = 64 * 1024;
// The forward direction reads only once this much of the link queue is free (or the queue is
// empty): a fluid (rate) trace frees the queue continuously, and reading every few bytes of room
// spun the relay's thread on tiny syscalls until it fell behind the trace.
constexpr std::uint64_t kMinRead = 16 * 1024;

struct Direction {
  std::deque<std::vector<char>> chunks;
  std::size_t front_off = 0;
  std::uint64_t read = 0, scheduled = 0, released = 0, written = 0;
  std::deque<std::pair<TimeNs, std::uint64_t>> releases;  // (time, cumulative bytes released then)
  bool reading = false, writing = false, eof_seen = false, eof_sent = false;
  TimeNs eof_at = 0;
  std::uint64_t reserved = 0;  // forward only: link bytes reserved by the outstanding read
  bool cut = false, stalled = false;  // forward only, fault mode: what happens at the fault offset
};

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
}  // namespace

FaultKind parse_fault_kind(const std::string& s) {
  if (s == "cut") return FaultKind::kCut;
  if (s == "corrupt") return FaultKind::kCorrupt;
  if (s == "stall") return FaultKind::kStall;
  throw std::invalid_argument("relay: unknown fault '" + s + "' (cut, corrupt or stall)");
}

const char* fault_kind_name(FaultKind k) {
  switch (k) {
    case FaultKind::kCut: return "cut";
    case FaultKind::kCorrupt: return "corrupt";
    case FaultKind::kStall: return "stall";
    case FaultKind::kNone: break;
  }
  return "none";
}

std::uint64_t fault_offset(const FaultConfig& f, std::uint32_t id) {
  const std::uint64_t span = f.max_offset > f.min_offset ? f.max_offset - f.min_offset : 1;
  return f.min_offset + splitmix64(f.seed * 0x100000001b3ull ^ id) % span;
}

nlohmann::json RelayStats::to_json() const {
  nlohmann::json j;
  j["connections"] = connections;
  j["bytes_down"] = bytes_down;
  j["bytes_up"] = bytes_up;
  auto& ps = j["per_second"] = nlohmann::json::array();
  for (const auto& s : per_second)
    ps.push_back({{"second", s.second}, {"bytes_down", s.bytes_down}, {"mbps", s.mbps}, {"capacity_mbps", s.capacity_mbps}});
  auto& pc = j["per_connection"] = nlohmann::json::array();
  for (const auto& c : per_connection) {
    nlohmann::json cj = {{"id", c.id},
                         {"bytes_down", c.bytes_down},
                         {"bytes_up", c.bytes_up},
                         {"opened_s", c.opened_s},
                         {"first_up_byte_s", c.first_up_byte_s},
                         {"last_down_byte_s", c.last_down_byte_s},
                         {"closed_s", c.closed_s},
                         {"end_reason", c.end_reason}};
    if (c.fault_offset >= 0) {
      cj["fault_offset"] = c.fault_offset;
      cj["fault_struck"] = c.fault_struck;
    }
    pc.push_back(std::move(cj));
  }
  return j;
}

struct Relay::Impl {
  struct Session : std::enable_shared_from_this<Session> {
    Session(asio::io_context& io, std::uint32_t id_) : id(id_), down(io), up(io) {}
    std::uint32_t id;
    tcp::socket down, up;
    bool up_connected = false, closed = false;
    Direction fwd, rev;
  };
  using SessionPtr = std::shared_ptr<Session>;

  // The LinkModel adds the trace's path delay; cfg.delay_ns becomes that effective delay, so
  // that both directions use it.
  explicit Impl(RelayConfig c)
      : cfg(std::move(c)), link(cfg.trace, LinkConfig{cfg.delay_ns, 0, QueuePolicy::kBackpressure}) {
    cfg.delay_ns = link.config().delay_ns;
  }

  RelayConfig cfg;
  asio::io_context io;
  tcp::acceptor acceptor{io};
  asio::steady_timer timer{io};
  std::uint64_t timer_gen = 0;
  std::optional<TimeNs> timer_at;
  TimeNs last_tick = std::numeric_limits<TimeNs>::min() / 2;
  tcp::resolver::results_type upstream;
  LinkModel link;
  std::map<std::uint32_t, SessionPtr> sessions;
  std::uint32_t next_id = 1;
  std::uint64_t reserved = 0;
  std::vector<Departure> deps;
  std::thread thread;
  bool started = false, stopped = false;
  std::uint16_t bound_port = 0;

  mutable std::mutex mu;  // guards everything below (read by other threads)
  std::optional<SteadyTime::time_point> epoch;
  std::map<std::int64_t, std::uint64_t> per_second_down;
  std::vector<RelayConnectionStats> conns;
  std::uint64_t bytes_down = 0, bytes_up = 0;

  // ---- time ----
  TimeNs now() {
    std::lock_guard<std::mutex> lk(mu);
    if (!epoch) return 0;
    return std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyTime::now() - *epoch).count();
  }
  SteadyTime::time_point to_clock(TimeNs t) {
    std::lock_guard<std::mutex> lk(mu);
    return *epoch + std::chrono::nanoseconds(t);
  }
  RelayConnectionStats& conn(std::uint32_t id) { return conns[id - 1]; }  // caller holds mu

  // ---- accept / connect ----
  void do_accept() {
    auto s = std::make_shared<Session>(io, next_id);
    acceptor.async_accept(s->down, [this, s](const asio::error_code& ec) {
      if (stopped || ec == asio::error::operation_aborted) return;
      if (!ec) on_accepted(s);
      do_accept();
    });
  }

  void on_accepted(const SessionPtr& s) {
    ++next_id;
    {
      std::lock_guard<std::mutex> lk(mu);
      if (!epoch) epoch = SteadyTime::now();
    }
    const TimeNs t = now();
    {
      std::lock_guard<std::mutex> lk(mu);
      RelayConnectionStats cs;
      cs.id = s->id;
      cs.opened_s = ns_to_seconds(t);
      if (cfg.fault.kind != FaultKind::kNone) cs.fault_offset = std::int64_t(fault_offset(cfg.fault, s->id));
      conns.push_back(cs);
    }
    asio::error_code ignore;
    s->down.set_option(tcp::no_delay(true), ignore);
    sessions[s->id] = s;
    asio::async_connect(s->up, upstream, [this, s](const asio::error_code& ec, const tcp::endpoint&) {
      if (s->closed) return;
      if (ec) return end_session(s, "connect failed: " + ec.message(), true);
      asio::error_code ig;
      s->up.set_option(tcp::no_delay(true), ig);
      s->up_connected = true;
      pump(s);
    });
  }

  // ---- forward direction (shaped) ----
  std::uint64_t link_room(TimeNs t) const {
    const std::uint64_t q = link.queued_bytes(t) + reserved;
    return q >= cfg.queue_bytes ? 0 : cfg.queue_bytes - q;
  }

  // Fault mode: applies the connection's fault to the k bytes just read at forward offset d.read.
  void apply_fault(const SessionPtr& s, std::vector<char>& buf, std::size_t& k) {
    Direction& d = s->fwd;
    if (cfg.fault.kind == FaultKind::kNone || d.cut || d.stalled) return;
    const std::uint64_t at = fault_offset(cfg.fault, s->id);
    if (at < d.read || at >= d.read + k) return;
    const std::size_t i = static_cast<std::size_t>(at - d.read);
    switch (cfg.fault.kind) {
      case FaultKind::kCorrupt:
        buf[i] = static_cast<char>(buf[i] ^ static_cast<char>(1 + splitmix64(cfg.fault.seed ^ at) % 255));
        break;
      case FaultKind::kCut: k = i; d.cut = true; break;
      case FaultKind::kStall: k = i; d.stalled = true; break;
      case FaultKind::kNone: break;
    }
    std::lock_guard<std::mutex> lk(mu);
    conn(s->id).fault_struck = true;
  }

  void read_fwd(const SessionPtr& s) {
    Direction& d = s->fwd;
    if (s->closed || !s->up_connected || d.reading || d.eof_seen || d.stalled) return;
    if (d.released - d.written >= cfg.write_backlog_bytes) return;  // receiver is slow
    const TimeNs t = now();
    const std::uint64_t room = link_room(t);
    if (room == 0) return;  // the timer retries when the link has drained
    if (room < std::min(kMinRead, cfg.queue_bytes / 2) && link.queued_bytes(t) > 0) return;  // (the timer, too)
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kReadChunk, room));
    auto buf = std::make_shared<std::vector<char>>(n);
    d.reading = true;
    d.reserved = n;
    reserved += n;
    s->up.async_read_some(asio::buffer(*buf), [this, s, buf](const asio::error_code& ec, std::size_t k) {
      Direction& d = s->fwd;
      d.reading = false;
      reserved -= d.reserved;
      d.reserved = 0;
      if (s->closed) return;
      if (k > 0) apply_fault(s, *buf, k);
      if (d.cut) {  // delivered up to the offset, then reset (check_eof)
        d.eof_seen = true;
        d.eof_at = now() + cfg.delay_ns;
      }
      if (k > 0) {
        const TimeNs t = now();
        link.enqueue(t, k, s->id);
        buf->resize(k);
        d.chunks.push_back(std::move(*buf));
        d.read += k;
        std::lock_guard<std::mutex> lk(mu);
        auto& cs = conn(s->id);
        if (cs.first_up_byte_s < 0) cs.first_up_byte_s = ns_to_seconds(t);
      }
      if (d.cut || d.stalled) {
        // the fault decides the rest of the stream
      } else if (ec == asio::error::eof) {
        d.eof_seen = true;
        d.eof_at = now() + cfg.delay_ns;
      } else if (ec) {
        return end_session(s, "reset (sender): " + ec.message(), true);
      }
      read_fwd(s);
      reschedule();
    });
  }

  // ---- reverse direction (delay only) ----
  void read_rev(const SessionPtr& s) {
    Direction& d = s->rev;
    if (s->closed || !s->up_connected || d.reading || d.eof_seen) return;
    if (d.read - d.written >= cfg.write_backlog_bytes) return;
    auto buf = std::make_shared<std::vector<char>>(kReadChunk);
    d.reading = true;
    s->down.async_read_some(asio::buffer(*buf), [this, s, buf](const asio::error_code& ec, std::size_t k) {
      Direction& d = s->rev;
      d.reading = false;
      if (s->closed) return;
      const TimeNs t = now();
      if (k > 0) {
        buf->resize(k);
        d.chunks.push_back(std::move(*buf));
        d.read += k;
        d.scheduled += k;
        d.releases.emplace_back(t + cfg.delay_ns, d.scheduled);
      }
      if (ec && s->fwd.stalled) return end_session(s, "fault: stalled, then the receiver closed", true);
      if (ec == asio::error::eof) {
        d.eof_seen = true;
        d.eof_at = t + cfg.delay_ns;
      } else if (ec) {
        return end_session(s, "reset (receiver): " + ec.message(), true);
      }
      read_rev(s);
      reschedule();
    });
  }

  // ---- writing released bytes ----
  void write(const SessionPtr& s, bool forward) {
    Direction& d = forward ? s->fwd : s->rev;
    tcp::socket& sock = forward ? s->down : s->up;
    if (s->closed || d.writing) return;
    const std::uint64_t avail = d.released - d.written;
    if (avail == 0) return check_eof(s, forward);
    const auto& front = d.chunks.front();
    const std::size_t len =
        static_cast<std::size_t>(std::min<std::uint64_t>(front.size() - d.front_off, avail));
    d.writing = true;
    sock.async_write_some(asio::buffer(front.data() + d.front_off, len),
                          [this, s, forward](const asio::error_code& ec, std::size_t k) {
                            Direction& d = forward ? s->fwd : s->rev;
                            d.writing = false;
                            if (s->closed) return;
                            if (ec)
                              return end_session(s, std::string("reset (") + (forward ? "receiver" : "sender") +
                                                        "): " + ec.message(), true);
                            d.written += k;
                            d.front_off += k;
                            if (d.front_off == d.chunks.front().size()) {
                              d.chunks.pop_front();
                              d.front_off = 0;
                            }
                            {
                              const TimeNs t = now();
                              std::lock_guard<std::mutex> lk(mu);
                              auto& cs = conn(s->id);
                              if (forward) {
                                cs.bytes_down += k;
                                cs.last_down_byte_s = ns_to_seconds(t);
                                bytes_down += k;
                                per_second_down[t / kNsPerSec] += k;
                              } else {
                                cs.bytes_up += k;
                                bytes_up += k;
                              }
                            }
                            write(s, forward);
                            if (forward) read_fwd(s); else read_rev(s);
                          });
  }

  void check_eof(const SessionPtr& s, bool forward) {
    Direction& d = forward ? s->fwd : s->rev;
    if (s->closed || !d.eof_seen || d.eof_sent || d.writing || d.written != d.read) return;
    if (now() < d.eof_at) return reschedule();  // the timer comes back at eof_at
    if (forward && d.cut) return end_session(s, "fault: cut", true);
    asio::error_code ignore;
    (forward ? s->down : s->up).shutdown(tcp::socket::shutdown_send, ignore);
    d.eof_sent = true;
    if (s->fwd.eof_sent && s->rev.eof_sent) end_session(s, "eof", false);
  }

  void pump(const SessionPtr& s) {
    write(s, true);
    write(s, false);
    check_eof(s, true);
    check_eof(s, false);
    read_fwd(s);
    read_rev(s);
    reschedule();
  }

  // ---- the shaping clock ----
  void on_tick() {
    const TimeNs t = now();
    last_tick = t;
    deps.clear();
    link.advance(t, deps);
    for (const auto& dep : deps) {
      auto it = sessions.find(dep.flow);
      if (it == sessions.end()) continue;  // connection gone: its bytes still used the link
      Direction& d = it->second->fwd;
      d.scheduled += dep.bytes;
      d.releases.emplace_back(dep.arrival, d.scheduled);
    }
    std::vector<SessionPtr> all;
    all.reserve(sessions.size());
    for (auto& [id, s] : sessions) all.push_back(s);
    for (auto& s : all) {
      for (Direction* d : {&s->fwd, &s->rev})
        while (!d->releases.empty() && d->releases.front().first <= t) {
          d->released = d->releases.front().second;
          d->releases.pop_front();
        }
    }
    for (auto& s : all) pump(s);
    reschedule();
  }

  void reschedule() {
    if (stopped) return;
    std::optional<TimeNs> next = link.next_departure();
    auto consider = [&](TimeNs t) { next = next ? std::min(*next, t) : t; };
    for (auto& [id, s] : sessions) {
      for (Direction* d : {&s->fwd, &s->rev}) {
        if (!d->releases.empty()) consider(d->releases.front().first);
        if (d->eof_seen && !d->eof_sent && d->written == d->read) consider(d->eof_at);
      }
    }
    if (!next) return;
    TimeNs at = std::max(*next, last_tick + cfg.tick_ns);
    if (timer_at && *timer_at <= at) return;  // already due sooner
    timer_at = at;
    const std::uint64_t gen = ++timer_gen;
    timer.expires_at(to_clock(at));
    timer.async_wait([this, gen](const asio::error_code& ec) {
      if (ec == asio::error::operation_aborted || gen != timer_gen || stopped) return;
      timer_at.reset();
      on_tick();
    });
  }

  void end_session(const SessionPtr& s, const std::string& reason, bool abort) {
    if (s->closed) return;
    s->closed = true;
    asio::error_code ignore;
    for (tcp::socket* sock : {&s->down, &s->up}) {
      if (!sock->is_open()) continue;
      if (abort) sock->set_option(asio::socket_base::linger(true, 0), ignore);  // RST, not a clean EOF
      sock->close(ignore);
    }
    s->fwd.chunks.clear();
    s->rev.chunks.clear();
    sessions.erase(s->id);
    const TimeNs t = now();
    std::lock_guard<std::mutex> lk(mu);
    auto& cs = conn(s->id);
    cs.closed_s = ns_to_seconds(t);
    cs.end_reason = reason;
  }

  void shutdown_all() {
    stopped = true;
    asio::error_code ignore;
    acceptor.close(ignore);
    timer.cancel();
    std::vector<SessionPtr> all;
    for (auto& [id, s] : sessions) all.push_back(s);
    for (auto& s : all) end_session(s, "stopped", true);
  }
};

Relay::Relay(RelayConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {
  const auto& c = impl_->cfg;
  if (c.queue_bytes == 0) throw std::invalid_argument("relay: queue_bytes must be > 0 (bounded buffering)");
  if (c.write_backlog_bytes == 0) throw std::invalid_argument("relay: write_backlog_bytes must be > 0");
  if (c.delay_ns < 0 || c.tick_ns < 0) throw std::invalid_argument("relay: delay and tick must be >= 0");
  if (c.connect_port == 0) throw std::invalid_argument("relay: connect port must be set");
  if (c.fault.kind != FaultKind::kNone && c.fault.max_offset <= c.fault.min_offset)
    throw std::invalid_argument("relay: the fault offset range is empty (max must exceed min)");
}

Relay::~Relay() { stop(); }

void Relay::start() {
  auto& m = *impl_;
  if (m.started) throw std::logic_error("relay: start() called twice");
  try {
    tcp::resolver resolver(m.io);
    m.upstream = resolver.resolve(m.cfg.connect_host, std::to_string(m.cfg.connect_port));
    auto listen = resolver.resolve(m.cfg.listen_host, std::to_string(m.cfg.listen_port));
    const tcp::endpoint ep = listen.begin()->endpoint();
    m.acceptor.open(ep.protocol());
    m.acceptor.set_option(tcp::acceptor::reuse_address(true));
    m.acceptor.bind(ep);
    m.acceptor.listen();
    m.bound_port = m.acceptor.local_endpoint().port();
  } catch (const std::system_error& e) {
    throw std::runtime_error("relay: cannot listen on " + m.cfg.listen_host + ":" +
                             std::to_string(m.cfg.listen_port) + " / resolve " + m.cfg.connect_host + ": " +
                             e.what());
  }
  if (!m.cfg.trace_starts_at_first_connection) {
    std::lock_guard<std::mutex> lk(m.mu);
    m.epoch = SteadyTime::now();
  }
  m.started = true;
  m.do_accept();
  m.thread = std::thread([&m] { m.io.run(); });
}

void Relay::stop() {
  auto& m = *impl_;
  if (!m.started || !m.thread.joinable()) return;
  asio::post(m.io, [&m] {
    m.shutdown_all();
    m.io.stop();
  });
  m.thread.join();
}

std::uint16_t Relay::port() const { return impl_->bound_port; }

std::optional<std::chrono::steady_clock::time_point> Relay::link_epoch() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  return impl_->epoch;
}

const RelayConfig& Relay::config() const { return impl_->cfg; }

RelayStats Relay::stats() const {
  auto& m = *impl_;
  RelayStats s;
  std::lock_guard<std::mutex> lk(m.mu);
  s.connections = m.conns.size();
  s.bytes_down = m.bytes_down;
  s.bytes_up = m.bytes_up;
  s.per_connection = m.conns;
  if (!m.per_second_down.empty()) {
    const std::int64_t last = m.per_second_down.rbegin()->first;
    for (std::int64_t sec = 0; sec <= last; ++sec) {
      RelaySecondStats ps;
      ps.second = sec;
      auto it = m.per_second_down.find(sec);
      ps.bytes_down = it == m.per_second_down.end() ? 0 : it->second;
      ps.mbps = 8.0 * static_cast<double>(ps.bytes_down) / 1e6;
      const TimeNs a = sec * kNsPerSec, b = a + kNsPerSec;
      const std::uint64_t cap = m.cfg.trace.cumulative_bytes(b - 1) - (a > 0 ? m.cfg.trace.cumulative_bytes(a - 1) : 0);
      ps.capacity_mbps = 8.0 * static_cast<double>(cap) / 1e6;
      s.per_second.push_back(ps);
    }
  }
  return s;
}

}  // namespace kvstream::netsim
