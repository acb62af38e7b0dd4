// Serving benchmark clients (see serve_bench.h).
#include "bench/serve_bench.h"

#include <asio.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <deque>

#include <sys/resource.h>

#include "streamer/wire.h"

namespace kvstream::store {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
namespace ks = kvstream::streamer;

namespace {

struct Bench {
  explicit Bench(const ServeBenchOptions& o) : opt(o) {}
  const ServeBenchOptions& opt;
  asio::io_context io;
  Clock::time_point t0 = Clock::now();
  Clock::time_point deadline;
  size_t next_session = 0;
  ServeBenchResult res;
  bool may_start() const {
    return Clock::now() < deadline && (opt.sessions == 0 || res.sessions_started < opt.sessions);
  }
  void error(const std::string& e) {
    if (res.errors.size() < 20) res.errors.push_back(e);
  }
};

class Client : public std::enable_shared_from_this<Client> {
 public:
  explicit Client(Bench& b) : b_(b), sock_(b.io), timer_(b.io) {}

  void start() {
    if (!b_.may_start()) {  // done: nothing of this client may keep the io_context running
      asio::error_code ec;
      timer_.cancel();
      sock_.close(ec);
      ++gen_;
      return;
    }
    ++b_.res.sessions_started;
    reset();
    // Session k goes to sender k mod S and fetches context (k / S) mod C: every sender serves
    // every context (not only those whose index matches its own).
    const size_t k = b_.next_session++, ns = b_.opt.senders.size();
    const auto& s = b_.opt.senders[k % ns];
    sender_ = s.first + ":" + std::to_string(s.second);
    context_ = b_.opt.contexts[(k / ns) % b_.opt.contexts.size()];
    if (auto it = b_.opt.expected.find(context_); it != b_.opt.expected.end()) expected_ = it->second;
    arm();
    auto self = shared_from_this();
    asio::error_code ec;
    const auto addr = asio::ip::make_address(s.first, ec);
    if (ec) return fail("bad sender address " + s.first);
    sock_.async_connect(tcp::endpoint(addr, s.second), [self](const asio::error_code& e) {
      if (e) return self->fail("connect: " + e.message());
      asio::error_code ignore;
      self->sock_.set_option(tcp::no_delay(true), ignore);
      ks::Hello h;
      h.agent = "kvstream-bench-serve/1";
      self->send(ks::encode(h));
      self->send(ks::encode(ks::Request{self->context_, 1000, "bench"}));
      self->read();
    });
  }

 private:
  struct Pending {
    uint32_t chunk;
    uint16_t level;
    bool retry;
    Clock::time_point sent;
  };

  void reset() {
    asio::error_code ec;
    sock_.close(ec);
    sock_ = tcp::socket(b_.io);
    reader_ = ks::FrameReader();
    manifest_.reset();
    expected_.reset();
    out_.clear();
    pending_.clear();
    writing_ = false;
    done_ = false;
    next_ = 0;
    complete_ = 0;
    wrong_ = 0;
    ++gen_;
  }

  void arm() {
    timer_.expires_after(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(b_.opt.timeout_s)));
    auto self = shared_from_this();
    const uint64_t gen = gen_;
    timer_.async_wait([self, gen](const asio::error_code& ec) {
      if (ec || gen != self->gen_ || self->done_) return;
      self->fail("no data for " + std::to_string(self->b_.opt.timeout_s) + " s");
    });
  }

  void send(std::vector<uint8_t> f) {
    out_.push_back(std::make_shared<std::vector<uint8_t>>(std::move(f)));
    if (!writing_) write_next();
  }

  void write_next() {
    if (out_.empty()) {
      writing_ = false;
      return;
    }
    writing_ = true;
    auto buf = out_.front();
    auto self = shared_from_this();
    const uint64_t gen = gen_;
    asio::async_write(sock_, asio::buffer(*buf), [self, buf, gen](const asio::error_code& ec, size_t) {
      if (gen != self->gen_) return;
      if (ec) return self->fail("write: " + ec.message());
      self->out_.pop_front();
      self->write_next();
    });
  }

  void read() {
    auto self = shared_from_this();
    const uint64_t gen = gen_;
    sock_.async_read_some(asio::buffer(rx_), [self, gen](const asio::error_code& ec, size_t n) {
      if (gen != self->gen_ || self->done_) return;
      if (ec) return self->fail("read: " + ec.message());
      self->arm();
      try {
        self->reader_.feed(self->rx_.data(), n);
        while (auto f = self->reader_.next()) {
          self->handle(*f);
          if (self->done_ || gen != self->gen_) return;
        }
      } catch (const std::exception& e) {
        return self->fail(std::string("protocol: ") + e.what());
      }
      self->read();
    });
  }

  void handle(const ks::Frame& f) {
    switch (f.type) {
      case ks::FrameType::kHelloAck: return;
      case ks::FrameType::kError: return fail("sender error: " + ks::decode_error(f).message);
      case ks::FrameType::kManifest: {
        manifest_ = ks::decode_manifest(f);
        if (manifest_->context_id != context_) return fail("manifest of another context");
        if (b_.opt.level >= int(manifest_->levels.size())) return fail("the context has no level " + std::to_string(b_.opt.level));
        level_ = b_.opt.level < 0 ? ks::kTextLevel : manifest_->levels[size_t(b_.opt.level)].id;
        return request_more();
      }
      case ks::FrameType::kChunkData: return on_chunk(ks::decode_chunk_data(f));
      default: return fail(std::string("unexpected ") + ks::frame_type_name(f.type));
    }
  }

  void request_more() {
    while (pending_.size() < std::max<size_t>(1, b_.opt.window) && next_ < manifest_->chunks.size()) {
      send(ks::encode(ks::ChunkGet{next_, level_}));
      pending_.push_back({next_, level_, false, Clock::now()});
      ++next_;
    }
  }

  // Expected bytes of (chunk, wire level) from the original container; nullptr if unknown.
  std::span<const uint8_t> expected_blob(uint32_t chunk, uint16_t level) const {
    const auto& info = expected_->info();
    int ladder = level;
    if (level == ks::kTextLevel) ladder = info.level_index("text");
    return expected_->blob(chunk, ladder);
  }

  void on_chunk(ks::ChunkData cd) {
    if (pending_.empty()) return fail("unrequested CHUNK_DATA");
    const Pending p = pending_.front();
    if (cd.index != p.chunk || cd.level != p.level) return fail("CHUNK_DATA out of order");
    pending_.pop_front();
    auto& r = b_.res;
    r.latency_s.push_back(std::chrono::duration<double>(Clock::now() - p.sent).count());
    r.bytes += cd.blob.size();
    ++r.chunks;
    ++r.chunks_per_sender[sender_];
    if (b_.opt.chunks_done) ++*b_.opt.chunks_done;
    const bool text = p.level == ks::kTextLevel;
    const auto& mc = manifest_->chunks[p.chunk];
    const int li = text ? -1 : ks::manifest_level_index(*manifest_, p.level);
    const uint64_t want = text ? mc.text_bytes : mc.level_bytes[size_t(li)];
    if (!text && (cd.blob.empty() || cd.blob.size() != want)) {  // the receiver's rule: fetch it as text
      if (p.retry) return fail("chunk " + std::to_string(p.chunk) + " unusable twice");
      ++r.text_fallbacks;
      send(ks::encode(ks::ChunkGet{p.chunk, ks::kTextLevel}));
      pending_.push_back({p.chunk, ks::kTextLevel, true, Clock::now()});
      return;
    }
    if (expected_) {
      const auto e = expected_blob(p.chunk, p.level);
      if (e.size() != cd.blob.size() || std::memcmp(e.data(), cd.blob.data(), e.size()) != 0) ++wrong_, ++r.wrong_kv;
    } else {
      ++r.unverified;
    }
    ++(text ? r.text_chunks : r.kv_chunks);
    ++complete_;
    if (complete_ == manifest_->chunks.size()) return finish();
    request_more();
  }

  void finish() {
    done_ = true;
    ++b_.res.sessions_ok;
    send(ks::encode_end());
    auto self = shared_from_this();
    asio::post(b_.io, [self] { self->start(); });
  }

  void fail(const std::string& why) {
    if (done_) return;
    done_ = true;
    ++b_.res.sessions_failed;
    b_.error(sender_ + " " + context_ + ": " + why);
    asio::error_code ec;
    sock_.close(ec);
    ++gen_;
    // the next session after a pause, so that a dead sender is not hammered
    timer_.expires_after(std::chrono::milliseconds(20));
    auto self = shared_from_this();
    timer_.async_wait([self](const asio::error_code& e) {
      if (!e) self->start();
    });
  }

  Bench& b_;
  tcp::socket sock_;
  asio::steady_timer timer_;
  std::array<uint8_t, 65536> rx_{};
  ks::FrameReader reader_;
  std::optional<ks::Manifest> manifest_;
  std::shared_ptr<const codec::ContainerReader> expected_;
  std::deque<std::shared_ptr<std::vector<uint8_t>>> out_;
  std::deque<Pending> pending_;
  std::string sender_, context_;
  uint16_t level_ = 0;
  uint32_t next_ = 0;
  size_t complete_ = 0, wrong_ = 0;
  bool writing_ = false, done_ = false;
  uint64_t gen_ = 0;  // session number: handlers of an older session do nothing
};

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double pos = q * double(v.size() - 1);
  const size_t i = size_t(pos);
  const double frac = pos - double(i);
  return i + 1 < v.size() ? v[i] * (1 - frac) + v[i + 1] * frac : v[i];
}

}  // namespace

ServeBenchResult run_serve_bench(const ServeBenchOptions& opt) {
  if (opt.senders.empty() || opt.contexts.empty() || opt.receivers == 0)
    throw kvstream::Error(kvstream::ErrorCode::kInvalidArgument, "serve bench: needs senders, contexts and receivers");
  auto cpu_s = [] {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
  };
  const double cpu0 = cpu_s();
  Bench b(opt);
  b.deadline = b.t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt.duration_s));
  std::vector<std::shared_ptr<Client>> clients;
  for (size_t i = 0; i < opt.receivers; ++i) clients.push_back(std::make_shared<Client>(b));
  for (auto& c : clients) c->start();
  b.io.run();
  b.res.wall_s = std::chrono::duration<double>(Clock::now() - b.t0).count();
  b.res.client_cpu_s = cpu_s() - cpu0;
  return std::move(b.res);
}

nlohmann::json ServeBenchResult::to_json() const {
  auto ms = [&](double q) { return 1e3 * percentile(latency_s, q); };
  return {{"sessions_started", sessions_started},
          {"sessions_ok", sessions_ok},
          {"sessions_failed", sessions_failed},
          {"chunks", chunks},
          {"kv_chunks", kv_chunks},
          {"text_chunks", text_chunks},
          {"text_fallbacks", text_fallbacks},
          {"wrong_kv", wrong_kv},
          {"unverified_chunks", unverified},
          {"bytes", bytes},
          {"wall_s", wall_s},
          {"client_cpu_s", client_cpu_s},
          {"chunks_per_s", wall_s > 0 ? double(chunks) / wall_s : 0.0},
          {"mbytes_per_s", wall_s > 0 ? double(bytes) / wall_s / 1e6 : 0.0},
          {"latency_ms", {{"p50", ms(0.5)}, {"p90", ms(0.9)}, {"p99", ms(0.99)}, {"max", ms(1.0)}}},
          {"chunks_per_sender", chunks_per_sender},
          {"errors", errors}};
}

}  // namespace kvstream::store
