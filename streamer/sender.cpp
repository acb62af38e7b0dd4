// The sender: asynchronous per-connection protocol state machines on one io_context (sender.h).
#include "streamer/sender.h"

#include <asio.hpp>
#include <atomic>
#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "streamer/context_source.h"
#include "streamer/tcp_info.h"
#include "streamer/wire.h"

namespace kvstream::streamer {

using asio::ip::tcp;

struct Sender::Impl {
  explicit Impl(SenderOptions o)
      : opt(std::move(o)), dir(opt.source ? opt.source : std::make_shared<ContextDir>(opt.dir)), acceptor(io) {}
  SenderOptions opt;
  std::shared_ptr<ContextSource> dir;
  asio::io_context io;
  tcp::acceptor acceptor;
  std::thread thread;
  std::atomic<bool> running{false};
  std::atomic<uint64_t> connections{0}, active{0}, frames_sent{0}, bytes_sent{0}, errors_sent{0};
  uint16_t bound_port = 0;
  void log(const std::string& s) {
    if (opt.log) opt.log(s);
  }
  void accept();
};

namespace {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // srv outlives every connection: connections live in handlers owned by srv->io.
  Connection(Sender::Impl* srv, tcp::socket s, uint64_t id)
      : srv_(srv), sock_(std::move(s)), timer_(sock_.get_executor()), id_(id) {}

  void start() {
    ++srv_->active;
    arm_timer();
    read_header();
  }

 private:
  void arm_timer() {
    timer_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(srv_->opt.idle_timeout_s)));
    auto self = shared_from_this();
    timer_.async_wait([self](const asio::error_code& ec) {
      if (ec) return;
      if (self->stalled_) { self->arm_timer(); return; }  // fault injection keeps the socket open
      self->srv_->log("conn " + std::to_string(self->id_) + ": idle timeout");
      self->fail(WireErrorCode::kTimeout, "receiver idle for too long");
    });
  }

  void read_header() {
    if (closing_ || stalled_) return;
    if (queue_.size() >= srv_->opt.max_queued_frames) {
      read_paused_ = true;  // back-pressure: resume when the write queue drains
      return;
    }
    reading_ = true;
    auto self = shared_from_this();
    asio::async_read(sock_, asio::buffer(header_), [self](const asio::error_code& ec, size_t) {
      self->reading_ = false;
      if (ec) return self->close("read: " + ec.message());
      FrameHeader h;
      try {
        h = decode_header(self->header_.data());
      } catch (const ProtocolError& e) {
        // An older peer gets the error under its own version's header, so that it can read it.
        const uint16_t v = header_version(self->header_.data());
        const bool old = v >= 1 && v < kProtocolVersion;
        return self->fail(old ? WireErrorCode::kVersion : WireErrorCode::kBadFrame, e.what(), old ? v : kProtocolVersion);
      }
      self->payload_.resize(h.length);
      self->reading_ = true;
      asio::async_read(self->sock_, asio::buffer(self->payload_), [self, h](const asio::error_code& ec2, size_t) {
        self->reading_ = false;
        if (ec2) return self->close("read: " + ec2.message());
        Frame f{h.type, std::move(self->payload_)};
        self->payload_.clear();
        try {
          check_crc(self->header_.data(), f.payload, h.crc);
          self->arm_timer();
          self->handle(f);
        } catch (const ProtocolError& e) {
          return self->fail(WireErrorCode::kBadFrame, e.what());
        } catch (const std::exception& e) {
          return self->fail(WireErrorCode::kInternal, e.what());
        }
        self->read_header();
      });
    });
  }

  void handle(const Frame& f) {
    switch (f.type) {
      case FrameType::kHello: {
        const Hello h = decode_hello(f);
        if (h.min_version > kProtocolVersion || h.max_version < kProtocolVersion)
          return fail(WireErrorCode::kVersion, "no common protocol version (sender speaks " + std::to_string(kProtocolVersion) + ")");
        hello_ = true;
        HelloAck a;
        a.max_chunk_bytes = uint32_t(max_payload(FrameType::kChunkData));
        a.agent = "kvstream-send/1";
        return send(encode(a));
      }
      case FrameType::kRequest: {
        if (!hello_) return fail(WireErrorCode::kBadRequest, "REQUEST before HELLO");
        if (ctx_) return fail(WireErrorCode::kBadRequest, "a connection fetches one context");
        const Request r = decode_request(f);
        ctx_ = srv_->dir->context(r.context_id);
        if (!ctx_) return fail(WireErrorCode::kUnknownContext, "unknown context '" + r.context_id + "'");
        srv_->log("conn " + std::to_string(id_) + ": context " + r.context_id + " slo " +
                  std::to_string(r.slo_ms) + " ms policy " + r.policy);
        Manifest m = ctx_->manifest();
        m.link = link_report();  // controller (issue 14)
        return send(encode(m));
      }
      case FrameType::kProfileGet: {
        const ProfileGet g = decode_profile_get(f);
        auto bytes = srv_->dir->profile_bytes(g.profile_hash);
        if (!bytes) return fail(WireErrorCode::kBadRequest, "no profile with hash " + g.profile_hash);
        return send(encode(ProfileData{g.profile_hash, std::move(*bytes)}));
      }
      case FrameType::kChunkGet: {
        if (!ctx_) return fail(WireErrorCode::kBadRequest, "CHUNK_GET before REQUEST");
        const ChunkGet g = decode_chunk_get(f);
        if (g.index >= ctx_->manifest().chunks.size())
          return fail(WireErrorCode::kBadRequest, "chunk " + std::to_string(g.index) + " out of range");
        const int li = ladder_index_of(*ctx_, g.level);
        if (li < 0) return fail(WireErrorCode::kBadRequest, "no level " + std::to_string(g.level));
        const auto& faults = srv_->opt.faults;
        if (int(g.index) == faults.stall_at_chunk) {
          stalled_ = true;
          srv_->log("conn " + std::to_string(id_) + ": fault: stalling");
          return;
        }
        const auto blob = ctx_->blob(g.index, li);
        ChunkData cd;
        cd.index = g.index;
        cd.level = g.level;
        cd.link = link_report();  // controller (issue 14)
        cd.blob = *blob;
        const bool text = g.level == kTextLevel;
        if (!cd.blob.empty() && int(g.index) == (text ? faults.corrupt_text_chunk : faults.corrupt_blob_chunk)) {
          cd.blob[cd.blob.size() / 2] ^= 0x5A;
          srv_->log("conn " + std::to_string(id_) + ": fault: corrupting the blob of chunk " + std::to_string(g.index));
        }
        auto frame = encode(cd);
        if (int(g.index) == faults.corrupt_chunk) frame[frame.size() / 2] ^= 0x5A;
        if (int(g.index) == faults.close_at_chunk) {
          frame.resize(frame.size() / 2);
          close_after_write_ = true;
        }
        auto shared = std::make_shared<std::vector<uint8_t>>(std::move(frame));
        remember_queued(g.index, g.level, shared);  // controller (issue 14): a CANCEL may replace it
        return send(std::move(shared));
      }
      case FrameType::kCancel: {  // controller (issue 14)
        if (!ctx_) return fail(WireErrorCode::kBadRequest, "CANCEL before REQUEST");
        return cancel(decode_cancel(f));
      }
      case FrameType::kEnd:
        closing_ = true;
        if (queue_.empty()) close("end");
        return;
      case FrameType::kError: {
        const ErrorMsg e = decode_error(f);
        return close("receiver error: " + e.message);
      }
      default:
        return fail(WireErrorCode::kBadFrame, std::string("unexpected ") + frame_type_name(f.type) + " frame");
    }
  }

  void send(std::vector<uint8_t> frame) { send(std::make_shared<std::vector<uint8_t>>(std::move(frame))); }
  void send(std::shared_ptr<std::vector<uint8_t>> frame) {
    if (stalled_) return;
    queue_.push_back(std::move(frame));
    if (!writing_) write_next();
  }

  // ---- controller (issue 14): the link report and CANCEL ----
  LinkReport link_report() { return read_link_report(int(sock_.native_handle())); }

  void remember_queued(uint32_t chunk, uint16_t level, const std::shared_ptr<std::vector<uint8_t>>& frame) {
    for (auto it = queued_chunks_.begin(); it != queued_chunks_.end();)
      it = it->second.frame.expired() ? queued_chunks_.erase(it) : std::next(it);
    queued_chunks_[chunk] = {frame, level};
  }

  // A CANCEL replaces the answer to a CHUNK_GET that has not begun to be written (every request
  // still gets exactly one CHUNK_DATA); for one already on its way it changes nothing.
  void cancel(const Cancel& c) {
    auto it = queued_chunks_.find(c.index);
    if (it == queued_chunks_.end()) return;
    const auto frame = it->second.frame.lock();
    const auto first_unsent = queue_.begin() + (writing_ ? 1 : 0);
    if (!frame || std::find(first_unsent, queue_.end(), frame) == queue_.end()) return;
    ChunkData cd;
    cd.index = c.index;
    cd.level = it->second.level;
    cd.link = link_report();
    if (c.replacement == kNoReplacement) {
      cd.status = kChunkCancelled;
    } else {
      const int li = ladder_index_of(*ctx_, c.replacement);
      if (li < 0) return fail(WireErrorCode::kBadRequest, "no level " + std::to_string(c.replacement));
      cd.level = c.replacement;
      cd.blob = *ctx_->blob(c.index, li);
    }
    *frame = encode(cd);
    queued_chunks_.erase(it);
    srv_->log("conn " + std::to_string(id_) + ": chunk " + std::to_string(c.index) + " replaced by a CANCEL");
  }
  struct Queued {
    std::weak_ptr<std::vector<uint8_t>> frame;
    uint16_t level;
  };
  std::map<uint32_t, Queued> queued_chunks_;  // CHUNK_DATA frames not yet written, by chunk
  // ---- end controller (issue 14) ----

  void write_next() {
    if (queue_.empty()) {
      writing_ = false;
      if (closing_) return close("done");
      if (read_paused_) {
        read_paused_ = false;
        read_header();
      }
      return;
    }
    writing_ = true;
    auto buf = queue_.front();
    auto self = shared_from_this();
    asio::async_write(sock_, asio::buffer(*buf), [self, buf](const asio::error_code& ec, size_t n) {
      if (ec) return self->close("write: " + ec.message());
      ++self->srv_->frames_sent;
      self->srv_->bytes_sent += n;
      self->queue_.pop_front();
      if (self->close_after_write_) return self->close("fault: closed mid-chunk");
      if (self->read_paused_ && self->queue_.size() < self->srv_->opt.max_queued_frames && !self->reading_) {
        self->read_paused_ = false;
        self->read_header();
      }
      self->write_next();
    });
  }

  void fail(WireErrorCode code, const std::string& msg, uint16_t version = kProtocolVersion) {
    if (closing_) return;
    srv_->log("conn " + std::to_string(id_) + ": error: " + msg);
    ++srv_->errors_sent;
    stalled_ = false;
    // Nothing else goes out after an error, but a frame mid-write finishes first (its completion
    // handler pops it).
    if (writing_ && !queue_.empty()) queue_.erase(queue_.begin() + 1, queue_.end());
    else queue_.clear();
    closing_ = true;
    auto frame = std::make_shared<std::vector<uint8_t>>(encode_error_for_version(ErrorMsg{code, msg}, version));
    queue_.push_back(frame);
    if (!writing_) write_next();
  }

  void close(const std::string& why) {
    if (closed_) return;
    closed_ = true;
    srv_->log("conn " + std::to_string(id_) + ": closed (" + why + ")");
    asio::error_code ec;
    timer_.cancel();
    sock_.shutdown(tcp::socket::shutdown_both, ec);
    sock_.close(ec);
    --srv_->active;
  }

  Sender::Impl* srv_;
  tcp::socket sock_;
  asio::steady_timer timer_;
  uint64_t id_;
  std::array<uint8_t, kHeaderSize> header_{};
  std::vector<uint8_t> payload_;
  std::deque<std::shared_ptr<std::vector<uint8_t>>> queue_;
  std::shared_ptr<const ServedContext> ctx_;
  bool hello_ = false, writing_ = false, reading_ = false, read_paused_ = false;
  bool closing_ = false, closed_ = false, stalled_ = false, close_after_write_ = false;
};

}  // namespace

void Sender::Impl::accept() {
  Impl* self = this;
  acceptor.async_accept([self](const asio::error_code& ec, tcp::socket s) {
    if (ec) {
      if (ec == asio::error::operation_aborted || !self->running) return;
      self->log(std::string("accept: ") + ec.message());
    } else if (self->active >= self->opt.max_connections) {
      asio::error_code ignore;
      s.close(ignore);
      self->log("refused a connection: too many receivers");
    } else {
      s.set_option(tcp::no_delay(true));
      const uint64_t id = ++self->connections;
      std::make_shared<Connection>(self, std::move(s), id)->start();
    }
    self->accept();
  });
}

Sender::Sender(SenderOptions opt) : impl_(std::make_shared<Impl>(std::move(opt))) {}
Sender::~Sender() { stop(); }

void Sender::start() {
  auto& I = *impl_;
  tcp::resolver res(I.io);
  asio::error_code ec;
  auto eps = res.resolve(I.opt.host, std::to_string(I.opt.port), ec);
  if (ec || eps.empty()) throw std::runtime_error("send: cannot resolve " + I.opt.host + ": " + ec.message());
  const tcp::endpoint ep = *eps.begin();
  I.acceptor.open(ep.protocol(), ec);
  if (!ec) I.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) I.acceptor.bind(ep, ec);
  if (!ec) I.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("send: cannot listen on " + I.opt.host + ":" + std::to_string(I.opt.port) + ": " + ec.message());
  I.bound_port = I.acceptor.local_endpoint().port();
  I.running = true;
  I.accept();
  I.thread = std::thread([impl = impl_] { impl->io.run(); });
}

void Sender::stop() {
  if (!impl_ || !impl_->running.exchange(false)) return;
  asio::post(impl_->io, [impl = impl_] {
    asio::error_code ec;
    impl->acceptor.close(ec);
    impl->io.stop();
  });
  if (impl_->thread.joinable()) impl_->thread.join();
}

uint16_t Sender::port() const { return impl_->bound_port; }

SenderStats Sender::stats() const {
  SenderStats s;
  s.connections = impl_->connections;
  s.active = impl_->active;
  s.frames_sent = impl_->frames_sent;
  s.bytes_sent = impl_->bytes_sent;
  s.errors_sent = impl_->errors_sent;
  return s;
}

}  // namespace kvstream::streamer
