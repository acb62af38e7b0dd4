// The sender: per-connection protocol state machines on one I/O thread, blocking work on a worker
// pool (sender.h).
#include "streamer/sender.h"

#include <sys/resource.h>

#include <asio.hpp>
#include <atomic>
#include <algorithm>
#include <deque>
#include <filesystem>
#include <list>
#include <map>
#include <mutex>
#include <thread>

#include "streamer/auth.h"
#include "streamer/context_cache.h"
#include "streamer/context_source.h"
#include "streamer/tcp_info.h"
#include "streamer/transport.h"
#include "streamer/wire.h"
#include "streamer/worker_pool.h"

namespace kvstream::streamer {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

class Connection;
using Bytes = std::shared_ptr<const std::vector<uint8_t>>;

Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

Bytes shared(std::vector<uint8_t> v) { return std::make_shared<const std::vector<uint8_t>>(std::move(v)); }

// The ERROR a source's failure becomes: its code when the receiver may know it, else INTERNAL;
// the message is generic (the exception, which may name paths, goes to the log).
ErrorMsg source_error(const std::exception& e, const std::string& what) {
  WireErrorCode code = WireErrorCode::kInternal;
  if (const auto* ke = dynamic_cast<const kvstream::Error*>(&e)) {
    const WireErrorCode w = wire_error_of(ke->code());
    if (w == WireErrorCode::kUnknownContext || w == WireErrorCode::kBusy || w == WireErrorCode::kTimeout) code = w;
  }
  switch (code) {
    case WireErrorCode::kUnknownContext: return {code, "unknown " + what};
    case WireErrorCode::kBusy: return {code, "the sender is busy"};
    case WireErrorCode::kTimeout: return {code, what + " timed out at the sender"};
    default: return {WireErrorCode::kInternal, what + " cannot be served (see the sender's log)"};
  }
}

}  // namespace

struct Sender::Impl {
  explicit Impl(SenderOptions o) : opt(std::move(o)), acceptor(io), accept_retry(io), pool(std::max(1, opt.workers)) {}
  SenderOptions opt;
  asio::io_context io;
  tcp::acceptor acceptor;
  asio::steady_timer accept_retry;
  std::shared_ptr<asio::ssl::context> tls;
  std::shared_ptr<ContextCache> cache;
  Secret decoy_key;  // proofs of unknown tenants are checked against it, so they fail like bad ones
  std::thread thread;
  std::atomic<bool> running{false};
  uint16_t bound_port = 0;

  // ---- I/O thread only ----
  std::list<std::weak_ptr<Connection>> pending;  // oldest first
  std::map<std::string, size_t> tenant_serving;
  std::deque<std::weak_ptr<Connection>> memory_waiters;
  uint64_t queued = 0;  // bytes of queued frames + reserved blob reads, all connections
  std::map<std::string, uint64_t> tenant_queued;  // the same, per authenticated tenant (keys only)
  bool accept_error_logged = false;

  // ---- any thread ----
  std::atomic<uint64_t> connections{0}, active{0}, frames_sent{0}, bytes_sent{0}, errors_sent{0};
  std::atomic<uint64_t> n_pending{0}, serving{0}, evicted{0}, busy{0}, auth_failures{0};
  std::atomic<uint64_t> handshake_timeouts{0}, idle_timeouts{0}, write_timeouts{0}, queued_now{0}, peak_queued{0};
  std::atomic<uint64_t> peak_tenant_queued{0};
  std::mutex sources_mu;
  std::map<std::string, std::shared_ptr<ContextSource>> sources;  // by tenant ("" = insecure)

  WorkerPool pool;  // last: destroyed (joined) first, before the io_context its tasks post to

  void log(const std::string& s) {
    if (opt.log) opt.log(s);
  }
  void accept();
  void on_accepted(tcp::socket s);
  // The source of a tenant's contexts, made once (worker threads).
  std::shared_ptr<ContextSource> source_for(const std::string& tenant);
  // Memory budget: reserve() fails when the global budget, or the tenant's share of it, is spent
  // (and something is queued there already). `tenant` is null for bytes of no authenticated
  // tenant (the handshake's frames, an insecure sender). charge() adds without a check.
  uint64_t tenant_budget() const { return opt.tenant_budget_bytes ? opt.tenant_budget_bytes : opt.memory_budget_bytes / 4; }
  bool reserve(uint64_t n, const std::string* tenant) {
    if (queued > 0 && queued + n > opt.memory_budget_bytes) return false;
    if (tenant) {
      const auto it = tenant_queued.find(*tenant);
      const uint64_t t = it == tenant_queued.end() ? 0 : it->second;
      if (t > 0 && t + n > tenant_budget()) return false;
    }
    charge(n, tenant);
    return true;
  }
  void charge(uint64_t n, const std::string* tenant) {
    queued += n;
    if (tenant) {
      const uint64_t t = tenant_queued[*tenant] += n;
      if (t > peak_tenant_queued) peak_tenant_queued = t;
    }
    note_queued();
  }
  void release(uint64_t n, const std::string* tenant);
  void note_queued() {
    queued_now = queued;
    if (queued > peak_queued) peak_queued = queued;
  }
  void raise_fd_limit();
};

namespace {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // srv outlives every connection's activity: handlers run on srv->io, tasks on srv->pool.
  Connection(Sender::Impl* srv, std::unique_ptr<Transport> t, uint64_t id)
      : srv_(srv), t_(std::move(t)), timer_(t_->socket().get_executor()), id_(id) {}

  void start(std::list<std::weak_ptr<Connection>>::iterator pending_it) {
    pending_it_ = pending_it;
    in_pending_ = true;
    ++srv_->active;
    accepted_ = last_frame_ = Clock::now();
    arm(accepted_ + seconds(srv_->opt.handshake_timeout_s));
    auto self = shared_from_this();
    t_->async_handshake([self](const asio::error_code& ec) {
      if (self->closed_) return;
      if (ec) return self->close("TLS handshake: " + ec.message());
      self->phase_ = Phase::kHello;
      self->pump();
    });
  }

  // Closes without a word (evicted from the pending list, or the sender stopping).
  void evict(const std::string& why) { close(why); }

  // Called when memory was released: retries a request that waited for it.
  void memory_freed() {
    if (closed_ || !waiting_memory_) return;
    waiting_memory_ = false;
    dispatch_chunk();
  }

 private:
  enum class Phase { kTls, kHello, kAuth, kRequest, kServing };
  struct OutFrame {
    Bytes head, tail;  // tail: a shared blob or profile (may be null)
    uint64_t bytes = 0;
    const std::string* account = nullptr;  // charged to this tenant (see account())
    std::optional<ChunkGet> chunk;  // a CHUNK_DATA a CANCEL may still replace: the request it answers
    bool cancel_pending = false;    // a CANCEL's replacement blob is being read
  };

  std::string tag() const { return "conn " + std::to_string(id_) + ": "; }
  bool auth_required() const { return srv_->opt.keys != nullptr; }
  // The tenant whose share of the memory budget this connection's bytes count against: set once
  // the connection is admitted (authenticated), and never changes after.
  const std::string* account() const { return counted_ && auth_required() ? &tenant_ : nullptr; }

  // ---- reading ----
  bool can_take_frames() const {
    return !closed_ && !closing_ && !busy_ && !waiting_memory_ && !stalled_ && phase_ != Phase::kTls &&
           queued_bytes_ < srv_->opt.max_queued_bytes;
  }

  // Handles the complete frames buffered so far while the connection may take requests, then reads.
  void pump() {
    while (can_take_frames()) {
      std::optional<Frame> f;
      try {
        f = reader_.next();
      } catch (const ProtocolError& e) {
        const uint16_t v = reader_.pending_version();
        const bool old = v >= 1 && v < kProtocolVersion;
        return fail(old ? WireErrorCode::kVersion : WireErrorCode::kBadFrame, e.what(), old ? v : kProtocolVersion);
      }
      if (!f) break;
      last_frame_ = Clock::now();
      try {
        handle(*f);
      } catch (const ProtocolError& e) {
        return fail(WireErrorCode::kBadFrame, e.what());
      } catch (const std::exception& e) {
        srv_->log(tag() + "internal error: " + e.what());
        return fail(WireErrorCode::kInternal, "internal error (see the sender's log)");
      }
    }
    if (can_take_frames()) read();
  }

  void read() {
    if (reading_) return;
    reading_ = true;
    auto self = shared_from_this();
    t_->async_read_some(asio::buffer(rx_), [self](const asio::error_code& ec, size_t n) {
      self->reading_ = false;
      if (self->closed_) return;
      if (ec) return self->close("read: " + ec.message());
      self->reader_.feed(self->rx_.data(), n);
      self->pump();
    });
  }

  // ---- the protocol ----
  void handle(const Frame& f) {
    switch (f.type) {
      case FrameType::kHello: return on_hello(decode_hello(f));
      case FrameType::kAuth: return on_auth(decode_auth(f));
      case FrameType::kRequest: return on_request(decode_request(f));
      case FrameType::kProfileGet: return on_profile_get(decode_profile_get(f));
      case FrameType::kChunkGet: return on_chunk_get(decode_chunk_get(f));
      case FrameType::kCancel: return on_cancel(decode_cancel(f));  // controller (issue 14)
      case FrameType::kEnd:
        begin_closing();
        if (queue_.empty()) close("end");
        return;
      case FrameType::kError: return close("receiver error: " + decode_error(f).message);
      default:
        return fail(WireErrorCode::kBadFrame, std::string("unexpected ") + frame_type_name(f.type) + " frame");
    }
  }

  // Whether a request frame may be answered now; if not, the connection is failed.
  bool authenticated_for(const char* what) {
    if (phase_ == Phase::kRequest || phase_ == Phase::kServing) return true;
    if (phase_ == Phase::kAuth || auth_required()) fail(WireErrorCode::kAuth, "authentication required");
    else fail(WireErrorCode::kBadRequest, std::string(what) + " before HELLO");
    return false;
  }

  void on_hello(const Hello& h) {
    if (phase_ != Phase::kHello) return fail(WireErrorCode::kBadRequest, "HELLO may be sent only once");
    if (h.min_version > kProtocolVersion || h.max_version < kProtocolVersion)
      return fail(WireErrorCode::kVersion, "no common protocol version (sender speaks " + std::to_string(kProtocolVersion) + ")");
    tenant_ = h.tenant;
    client_nonce_ = h.client_nonce;
    HelloAck a;
    a.max_chunk_bytes = uint32_t(max_payload(FrameType::kChunkData));
    a.agent = "kvstream-send/3";
    if (auth_required()) {
      a.auth = AuthMode::kHmacSha256;
      server_nonce_ = a.server_nonce = random_nonce();
      phase_ = Phase::kAuth;
    } else {
      phase_ = Phase::kRequest;
    }
    send_frame(shared(encode(a)));
  }

  void on_auth(const AuthMsg& m) {
    if (!auth_required()) return fail(WireErrorCode::kBadRequest, "this sender does not authenticate (AUTH)");
    if (phase_ != Phase::kAuth) return fail(WireErrorCode::kBadRequest, "unexpected AUTH");
    const Secret* key = srv_->opt.keys->find(tenant_);
    const Secret& k = key ? *key : srv_->decoy_key;
    const bool ok = macs_equal(m.proof, client_proof(k, tenant_, client_nonce_, server_nonce_)) && key;
    if (!ok) {
      ++srv_->auth_failures;
      srv_->log(tag() + (key ? "bad proof for tenant '" + tenant_ + "'" : "unknown tenant '" + tenant_ + "'"));
      return fail(WireErrorCode::kAuth, "authentication failed");
    }
    if (!admit()) return;
    send_frame(shared(encode(AuthOk{server_proof(k, tenant_, client_nonce_, server_nonce_)})));
    phase_ = Phase::kRequest;
  }

  // Moves the connection from pending to serving, within the global and per-tenant limits.
  bool admit() {
    if (counted_) return true;
    const auto& o = srv_->opt;
    const bool tenant_full = auth_required() && srv_->tenant_serving[tenant_] >= o.max_tenant_connections;
    if (srv_->serving >= o.max_connections || tenant_full) {
      ++srv_->busy;
      srv_->log(tag() + "refused: too many connections" + (tenant_.empty() ? "" : " of tenant '" + tenant_ + "'"));
      fail(WireErrorCode::kBusy, "too many connections");
      return false;
    }
    counted_ = true;
    ++srv_->serving;
    ++srv_->tenant_serving[tenant_];
    leave_pending();
    return true;
  }

  void on_request(const Request& r) {
    if (!authenticated_for("REQUEST")) return;
    if (phase_ == Phase::kServing || requested_) return fail(WireErrorCode::kBadRequest, "a connection fetches one context");
    if (!admit()) return;
    requested_ = true;
    srv_->log(tag() + (tenant_.empty() ? "" : "tenant " + tenant_ + " ") + "context " + r.context_id + " slo " +
              std::to_string(r.slo_ms) + " ms policy " + r.policy);
    run_task(
        [srv = srv_, tenant = tenant_, id = r.context_id, link = link_report()]() -> TaskResult {
          const auto src = srv->source_for(tenant);
          auto ctx = src ? src->context(id) : nullptr;
          TaskResult r;
          if (!ctx) {
            r.error = ErrorMsg{WireErrorCode::kUnknownContext, "unknown context '" + id + "'"};
            return r;
          }
          Manifest m = ctx->manifest();
          m.link = link;  // controller (issue 14): the sender's TCP state when it answered
          r.head = shared(encode(m));
          r.ctx = std::move(ctx);
          return r;
        },
        "context '" + r.context_id + "'", 0);
  }

  void on_profile_get(const ProfileGet& g) {
    if (!authenticated_for("PROFILE_GET")) return;
    run_task(
        [srv = srv_, tenant = tenant_, hash = g.profile_hash]() -> TaskResult {
          const auto src = srv->source_for(tenant);
          Bytes p;
          if (auto* cs = dynamic_cast<CachingSource*>(src.get())) p = cs->shared_profile(hash);
          else if (src)
            if (auto b = src->profile_bytes(hash)) p = shared(std::move(*b));
          TaskResult r;
          if (!p) {
            r.error = ErrorMsg{WireErrorCode::kBadRequest, "no profile with hash " + hash};
            return r;
          }
          r.head = shared(encode_profile_head(hash, *p));
          r.tail = std::move(p);
          return r;
        },
        "profile " + g.profile_hash, 0);
  }

  void on_chunk_get(const ChunkGet& g) {
    if (!authenticated_for("CHUNK_GET")) return;
    if (!ctx_) return fail(WireErrorCode::kBadRequest, "CHUNK_GET before REQUEST");
    const auto& m = ctx_->manifest();
    if (g.index >= m.chunks.size())
      return fail(WireErrorCode::kBadRequest, "chunk " + std::to_string(g.index) + " out of range");
    const int li = ladder_index_of(*ctx_, g.level);
    if (li < 0) return fail(WireErrorCode::kBadRequest, "no level " + std::to_string(g.level));
    if (int(g.index) == srv_->opt.faults.stall_at_chunk) {
      stalled_ = true;
      srv_->log(tag() + "fault: stalling");
      return;
    }
    const int mi = manifest_level_index(m, g.level);
    want_ = g;
    want_ladder_ = li;
    want_bytes_ = 64 + (mi >= 0 ? m.chunks[g.index].level_bytes[size_t(mi)] : m.chunks[g.index].text_bytes);
    dispatch_chunk();
  }

  // Runs the wanted chunk's blob read on the pool once the global budget has room for it.
  void dispatch_chunk() {
    if (!srv_->reserve(want_bytes_, account())) {
      waiting_memory_ = true;
      srv_->memory_waiters.push_back(weak_from_this());
      return;
    }
    const ChunkGet g = want_;
    run_task(
        [ctx = ctx_, g, li = want_ladder_, faults = srv_->opt.faults, link = link_report()]() -> TaskResult {
          Bytes blob = ctx->blob(g.index, li);
          const bool text = g.level == kTextLevel;
          if (!blob->empty() && int(g.index) == (text ? faults.corrupt_text_chunk : faults.corrupt_blob_chunk)) {
            auto b = *blob;
            b[b.size() / 2] ^= 0x5A;  // the frame CRC is computed over the flipped byte: only the blob's own fails
            blob = shared(std::move(b));
          }
          auto head = shared(encode_chunk_data_head(g.index, g.level, link, *blob));
          if (int(g.index) == faults.corrupt_chunk && !blob->empty()) {
            auto b = *blob;
            b[b.size() / 2] ^= 0x5A;  // after the CRC: the frame fails its checksum
            blob = shared(std::move(b));
          }
          TaskResult r;
          if (int(g.index) == faults.close_at_chunk) {
            blob = shared(std::vector<uint8_t>(blob->begin(), blob->begin() + long(blob->size() / 2)));
            r.close_after = true;
          }
          r.head = std::move(head);
          r.tail = std::move(blob);
          r.chunk = g;
          return r;
        },
        "chunk " + std::to_string(g.index), want_bytes_);
  }

  // ---- the worker pool ----
  struct TaskResult {
    Bytes head, tail;
    std::optional<ErrorMsg> error;
    std::shared_ptr<const ServedContext> ctx;  // a REQUEST's context
    bool close_after = false;                  // fault injection
    std::optional<ChunkGet> chunk;             // a CHUNK_DATA: the request it answers
    bool replaces = false;                     // a CANCEL's replacement for the queued answer to `chunk`
  };

  // Runs `task` on the pool (reserved: budget bytes held for it), then queues its frame here.
  template <class Task>
  void run_task(Task task, std::string what, uint64_t reserved) {
    busy_ = true;
    auto self = shared_from_this();
    srv_->pool.submit([self, task = std::move(task), what = std::move(what), reserved]() mutable {
      TaskResult r;
      try {
        r = task();
      } catch (const std::exception& e) {
        self->srv_->log(self->tag() + what + ": " + e.what());
        r.error = source_error(e, what);
      }
      asio::post(self->srv_->io, [self, r = std::move(r), reserved]() mutable { self->task_done(std::move(r), reserved); });
    });
  }

  void task_done(TaskResult r, uint64_t reserved) {
    busy_ = false;
    if (reserved) srv_->release(reserved, account());
    if (closed_ || closing_) return;
    if (r.error) return fail(r.error->code, r.error->message);
    if (r.ctx) {
      ctx_ = std::move(r.ctx);
      phase_ = Phase::kServing;
    }
    if (r.replaces) {  // controller (issue 14): swap it in if the answer is still unsent
      if (OutFrame* q = unsent_chunk(r.chunk->index, true)) replace(*q, std::move(r.head), std::move(r.tail));
      return pump();
    }
    close_after_write_ = r.close_after;
    send_frame(std::move(r.head), std::move(r.tail), r.chunk);
    pump();
  }

  // ---- writing ----
  void send_frame(Bytes head, Bytes tail = nullptr, std::optional<ChunkGet> chunk = {}) {
    if (stalled_ || closed_) return;
    OutFrame f{std::move(head), std::move(tail), 0, account(), chunk, false};
    f.bytes = f.head->size() + (f.tail ? f.tail->size() : 0);
    queued_bytes_ += f.bytes;
    srv_->charge(f.bytes, f.account);
    queue_.push_back(std::move(f));
    if (!writing_) write_next();
  }

  // ---- controller (issue 14): the link report and CANCEL ----
  LinkReport link_report() { return read_link_report(int(t_->socket().native_handle())); }

  // The first queued CHUNK_DATA for `chunk` that has not begun to be written and that no CANCEL
  // has touched yet; null if none.
  OutFrame* unsent_chunk(uint32_t chunk, bool cancel_pending) {
    for (size_t i = writing_ ? 1 : 0; i < queue_.size(); ++i) {
      OutFrame& q = queue_[i];
      if (q.chunk && q.chunk->index == chunk && q.cancel_pending == cancel_pending) return &q;
    }
    return nullptr;
  }

  // A CANCEL replaces the answer to a CHUNK_GET that has not begun to be written (every request
  // still gets exactly one CHUNK_DATA); for one already on its way, already replaced, or when the
  // memory budget has no room for the replacement's blob, it changes nothing. The replacement's
  // blob is read on the pool like any other; it is swapped in if the answer is still unsent then.
  // The frames after a CANCEL are read once it is done (as after a CHUNK_GET).
  void on_cancel(const Cancel& c) {
    if (!authenticated_for("CANCEL")) return;
    if (!ctx_) return fail(WireErrorCode::kBadRequest, "CANCEL before REQUEST");
    const auto& m = ctx_->manifest();
    if (c.index >= m.chunks.size())
      return fail(WireErrorCode::kBadRequest, "chunk " + std::to_string(c.index) + " out of range");
    if (c.replacement != kNoReplacement && ladder_index_of(*ctx_, c.replacement) < 0)
      return fail(WireErrorCode::kBadRequest, "no level " + std::to_string(c.replacement));
    OutFrame* q = unsent_chunk(c.index, false);
    if (!q || c.replacement == q->chunk->level) return;
    if (c.replacement == kNoReplacement) {
      ChunkData cd;
      cd.index = c.index;
      cd.level = q->chunk->level;
      cd.status = kChunkCancelled;
      cd.link = link_report();
      replace(*q, shared(encode(cd)), nullptr);
    } else {
      const int mi = manifest_level_index(m, c.replacement);
      const uint64_t bytes = 64 + (mi >= 0 ? m.chunks[c.index].level_bytes[size_t(mi)] : m.chunks[c.index].text_bytes);
      if (!srv_->reserve(bytes, account())) return;
      q->cancel_pending = true;
      const ChunkGet g{c.index, c.replacement};
      run_task(
          [ctx = ctx_, g, li = ladder_index_of(*ctx_, c.replacement), link = link_report()]() -> TaskResult {
            TaskResult r;
            r.tail = ctx->blob(g.index, li);
            r.head = shared(encode_chunk_data_head(g.index, g.level, link, *r.tail));
            r.chunk = g;
            r.replaces = true;
            return r;
          },
          "chunk " + std::to_string(g.index), bytes);
    }
  }

  // Swaps a queued, unsent frame's bytes (the budget charged for the new ones, released for the old).
  void replace(OutFrame& q, Bytes head, Bytes tail) {
    srv_->log(tag() + "chunk " + std::to_string(q.chunk->index) + " replaced by a CANCEL");
    const uint64_t n = head->size() + (tail ? tail->size() : 0);
    srv_->charge(n, q.account);
    srv_->release(q.bytes, q.account);
    queued_bytes_ = queued_bytes_ - q.bytes + n;
    q.head = std::move(head);
    q.tail = std::move(tail);
    q.bytes = n;
    q.chunk.reset();  // answered: no further CANCEL touches it
    q.cancel_pending = false;
  }
  // ---- end controller (issue 14) ----

  void write_next() {
    if (closed_) return;
    if (queue_.empty()) {
      writing_ = false;
      if (closing_) close("done");
      return;
    }
    writing_ = true;
    last_write_ = Clock::now();
    arm(last_write_ + seconds(srv_->opt.write_timeout_s));
    const OutFrame& f = queue_.front();
    Transport::Buffers b{asio::buffer(*f.head), f.tail ? asio::buffer(*f.tail) : asio::const_buffer()};
    auto self = shared_from_this();
    async_write_all(
        *t_, b,
        [self](size_t n) {
          self->last_write_ = Clock::now();
          self->srv_->bytes_sent += n;
        },
        [self, keep = f](const asio::error_code& ec) {  // keep: the buffers live until the write ends
          if (self->closed_) return;
          if (ec) return self->close("write: " + ec.message());
          ++self->srv_->frames_sent;
          self->pop_front();
          if (self->close_after_write_) return self->close("fault: closed mid-chunk");
          self->write_next();
          self->pump();
        });
  }

  void pop_front() {
    const uint64_t n = queue_.front().bytes;
    const std::string* account = queue_.front().account;
    queue_.pop_front();
    queued_bytes_ -= n;
    srv_->release(n, account);
  }

  // ---- errors, timeouts, closing ----
  void fail(WireErrorCode code, const std::string& msg, uint16_t version = kProtocolVersion) {
    if (closing_ || closed_) return;
    srv_->log(tag() + "error: " + msg);
    ++srv_->errors_sent;
    stalled_ = false;
    // Nothing else goes out after an error, but a frame mid-write finishes first (its completion
    // handler pops it).
    while (queue_.size() > (writing_ ? 1u : 0u)) {
      queued_bytes_ -= queue_.back().bytes;
      srv_->release(queue_.back().bytes, queue_.back().account);
      queue_.pop_back();
    }
    begin_closing();
    send_frame(shared(encode_error_for_version(ErrorMsg{code, msg}, version)));
  }

  // After ERROR or END: the last frames get a short deadline to leave, then the socket closes.
  void begin_closing() {
    closing_ = true;
    closing_deadline_ = Clock::now() + seconds(std::min(1.0, srv_->opt.write_timeout_s));
    arm(closing_deadline_);
  }

  void arm(Clock::time_point at) {
    if (closed_ || (timer_armed_ && at >= timer_at_)) return;
    timer_armed_ = true;
    timer_at_ = at;
    timer_.expires_at(at);
    auto self = shared_from_this();
    timer_.async_wait([self](const asio::error_code& ec) {
      if (ec || self->closed_) return;
      self->timer_armed_ = false;
      self->check_deadlines();
    });
  }

  void check_deadlines() {
    const auto& o = srv_->opt;
    const auto now = Clock::now();
    if (stalled_) return arm(now + seconds(o.idle_timeout_s));  // fault injection keeps the socket open
    std::optional<Clock::time_point> next;
    auto consider = [&](Clock::time_point t) { next = next ? std::min(*next, t) : t; };
    if (writing_) {
      const auto at = last_write_ + seconds(o.write_timeout_s);
      if (now >= at) {
        ++srv_->write_timeouts;
        return close("write timeout: the receiver stopped reading");
      }
      consider(at);
    }
    if (closing_) {
      if (now >= closing_deadline_) return close("closing: the last frame was not taken in time");
      consider(closing_deadline_);
    } else if (phase_ != Phase::kServing) {
      const auto at = accepted_ + seconds(o.handshake_timeout_s);
      if (now >= at) {
        ++srv_->handshake_timeouts;
        srv_->log(tag() + "handshake timeout");
        return close("handshake timeout");
      }
      consider(at);
    } else if (!writing_ && !busy_ && !waiting_memory_) {
      const auto at = last_frame_ + seconds(o.idle_timeout_s);
      if (now >= at) {
        ++srv_->idle_timeouts;
        return fail(WireErrorCode::kTimeout, "receiver idle for too long");
      }
      consider(at);
    } else {
      consider(now + seconds(o.idle_timeout_s));
    }
    if (next) arm(*next);
  }

  void leave_pending() {
    if (!in_pending_) return;
    in_pending_ = false;
    srv_->pending.erase(pending_it_);
    --srv_->n_pending;
  }

  void close(const std::string& why) {
    if (closed_) return;
    closed_ = true;
    srv_->log(tag() + "closed (" + why + ")");
    timer_.cancel();
    t_->close();
    while (!queue_.empty()) pop_front();
    leave_pending();
    if (counted_) {
      --srv_->serving;
      if (--srv_->tenant_serving[tenant_] == 0) srv_->tenant_serving.erase(tenant_);
    }
    --srv_->active;
  }

  Sender::Impl* srv_;
  std::unique_ptr<Transport> t_;
  asio::steady_timer timer_;
  uint64_t id_;
  std::array<uint8_t, kMaxPreAuthPayload> rx_{};
  // Every frame a receiver may send is at most 2 KiB; the reader holds at most one 4 KiB read
  // beyond the frame it is completing.
  FrameReader reader_{Peer::kReceiver, kMaxPreAuthPayload};
  std::deque<OutFrame> queue_;
  uint64_t queued_bytes_ = 0;
  Phase phase_ = Phase::kTls;
  std::string tenant_;
  Nonce client_nonce_{}, server_nonce_{};
  std::shared_ptr<const ServedContext> ctx_;
  ChunkGet want_{};
  int want_ladder_ = 0;
  uint64_t want_bytes_ = 0;
  Clock::time_point accepted_, last_frame_, last_write_, timer_at_, closing_deadline_;
  std::list<std::weak_ptr<Connection>>::iterator pending_it_;
  bool in_pending_ = false, counted_ = false, requested_ = false, timer_armed_ = false;
  bool reading_ = false, writing_ = false, busy_ = false, waiting_memory_ = false;
  bool closing_ = false, closed_ = false, stalled_ = false, close_after_write_ = false;
};

}  // namespace

void Sender::Impl::release(uint64_t n, const std::string* tenant) {
  queued -= std::min(queued, n);
  if (tenant)
    if (auto it = tenant_queued.find(*tenant); it != tenant_queued.end()) {
      it->second -= std::min(it->second, n);
      if (it->second == 0) tenant_queued.erase(it);
    }
  note_queued();
  // Wake requests that waited for memory, oldest first, while there is room.
  while (!memory_waiters.empty() && queued < opt.memory_budget_bytes) {
    auto c = memory_waiters.front().lock();
    memory_waiters.pop_front();
    if (c) asio::post(io, [c] { c->memory_freed(); });
  }
}

std::shared_ptr<ContextSource> Sender::Impl::source_for(const std::string& who) {
  const std::string tenant = opt.keys ? who : "";  // an insecure sender has one source for all
  std::lock_guard<std::mutex> lock(sources_mu);
  if (auto it = sources.find(tenant); it != sources.end()) return it->second;
  std::shared_ptr<ContextSource> src;
  if (!opt.keys) {
    src = opt.source ? opt.source : std::make_shared<ContextDir>(opt.dir);
  } else if (opt.tenant_source) {
    src = opt.tenant_source(tenant);
  } else {
    const auto d = std::filesystem::path(opt.dir) / tenant;
    std::error_code ec;
    if (std::filesystem::is_directory(d, ec)) src = std::make_shared<ContextDir>(d.string());
  }
  if (src && src->cacheable()) src = std::make_shared<CachingSource>(src, cache, tenant);
  sources[tenant] = src;
  return src;
}

void Sender::Impl::accept() {
  acceptor.async_accept([this](const asio::error_code& ec, tcp::socket s) {
    if (ec == asio::error::operation_aborted || !running) return;
    if (ec) {
      // Out of file descriptors (or similar): wait a moment instead of spinning on accept.
      if (!accept_error_logged) log(std::string("accept: ") + ec.message() + " (retrying every 100 ms)");
      accept_error_logged = true;
      accept_retry.expires_after(std::chrono::milliseconds(100));
      accept_retry.async_wait([this](const asio::error_code& e) {
        if (!e && running) accept();
      });
      return;
    }
    accept_error_logged = false;
    on_accepted(std::move(s));
    accept();
  });
}

void Sender::Impl::on_accepted(tcp::socket s) {
  // A full pending list gives way to the newcomer: the oldest handshake is the likeliest stuck.
  while (pending.size() >= std::max<size_t>(1, opt.max_pending)) {
    auto oldest = pending.front().lock();
    if (!oldest) {
      pending.pop_front();
      --n_pending;
      continue;
    }
    ++evicted;
    oldest->evict("evicted: too many connections in their handshake");
  }
  asio::error_code ignore;
  s.set_option(tcp::no_delay(true), ignore);
  const uint64_t id = ++connections;
  auto t = tls ? make_tls_transport(std::move(s), tls, true) : make_plain_transport(std::move(s));
  auto c = std::make_shared<Connection>(this, std::move(t), id);
  pending.push_back(c);
  ++n_pending;
  c->start(std::prev(pending.end()));
}

void Sender::Impl::raise_fd_limit() {
  const rlim_t need = rlim_t(opt.max_pending + opt.max_connections + 64);
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need) return;
  const rlim_t want = rl.rlim_max == RLIM_INFINITY ? need : std::min(need, rl.rlim_max);
  rlimit nl{want, rl.rlim_max};
  if (setrlimit(RLIMIT_NOFILE, &nl) != 0 || want < need)
    log("open-file limit " + std::to_string(want) + " is below the " + std::to_string(need) +
        " the connection limits need: connections beyond it wait in the listen queue");
}

Sender::Sender(SenderOptions opt) : impl_(std::make_shared<Impl>(std::move(opt))) {}
Sender::~Sender() { stop(); }

void Sender::start() {
  auto& I = *impl_;
  if (!I.opt.keys && !I.opt.insecure)
    throw kvstream::Error(kvstream::ErrorCode::kAuth, "send: no tenant keys given and not started as insecure");
  if (I.opt.tls) I.tls = make_server_tls(*I.opt.tls);
  I.cache = std::make_shared<ContextCache>(I.opt.cache_bytes);
  I.decoy_key.resize(32);
  random_bytes(I.decoy_key.data(), I.decoy_key.size());
  I.raise_fd_limit();
  tcp::resolver res(I.io);
  asio::error_code ec;
  auto eps = res.resolve(I.opt.host, std::to_string(I.opt.port), ec);
  if (ec || eps.empty())
    throw kvstream::Error(kvstream::ErrorCode::kUnavailable, "send: cannot resolve " + I.opt.host + ": " + ec.message());
  const tcp::endpoint ep = *eps.begin();
  I.acceptor.open(ep.protocol(), ec);
  if (!ec) I.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) I.acceptor.bind(ep, ec);
  if (!ec) I.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    throw kvstream::Error(kvstream::ErrorCode::kUnavailable,
                          "send: cannot listen on " + I.opt.host + ":" + std::to_string(I.opt.port) + ": " + ec.message());
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
    impl->accept_retry.cancel();
    impl->io.stop();
  });
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->pool.stop();
}

uint16_t Sender::port() const { return impl_->bound_port; }

SenderStats Sender::stats() const {
  const auto& I = *impl_;
  SenderStats s;
  s.connections = I.connections;
  s.active = I.active;
  s.frames_sent = I.frames_sent;
  s.bytes_sent = I.bytes_sent;
  s.errors_sent = I.errors_sent;
  s.pending = I.n_pending;
  s.serving = I.serving;
  s.evicted_pending = I.evicted;
  s.refused_busy = I.busy;
  s.auth_failures = I.auth_failures;
  s.handshake_timeouts = I.handshake_timeouts;
  s.idle_timeouts = I.idle_timeouts;
  s.write_timeouts = I.write_timeouts;
  s.queued_bytes = I.queued_now;
  s.peak_queued_bytes = I.peak_queued;
  s.peak_tenant_queued_bytes = I.peak_tenant_queued;
  if (I.cache) {
    const auto c = I.cache->stats();
    s.cache_bytes = c.bytes;
    s.cache_hits = c.hits;
    s.cache_misses = c.misses;
  }
  return s;
}

}  // namespace kvstream::streamer
