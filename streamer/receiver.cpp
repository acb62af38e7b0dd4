// The receiver: protocol client, request pipelining, decode pipeline, first token (receiver.h).
#include "streamer/receiver.h"

#include <asio.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <map>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <thread>

#include <unistd.h>

#include "codec/profile.h"
#include "codec/rope.h"
#include "streamer/auth.h"
#include "streamer/context_source.h"
#include "streamer/decode_pipeline.h"
#include "streamer/link_memory.h"
#include "streamer/profile_cache.h"
#include "streamer/transport.h"
#include "streamer/wire.h"

namespace kvstream::streamer {

using asio::ip::tcp;
using kvstream::ErrorCode;
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
using kvstream::ErrorCode;

// Bytes of a KV cache of `tokens` tokens of this shape (fp32 K and V); products in 64 bits from
// fields a parser has bounded.
uint64_t kv_cache_bytes(uint64_t tokens, const KvShape& s) {
  return tokens * 2 * uint64_t(std::max(0, s.n_layers)) * uint64_t(std::max(0, s.kv_dim())) * sizeof(float);
}

std::string mib(uint64_t b) { return std::to_string((b + (1 << 20) - 1) >> 20) + " MiB"; }

// Keeps the chunks of m that hold its first max_tokens tokens (whole chunks).
void truncate(Manifest& m, uint32_t max_tokens) {
  size_t keep = 0;
  while (keep < m.chunks.size() && m.chunks[keep].token_begin < max_tokens) ++keep;
  if (keep == 0 || keep == m.chunks.size()) return;
  m.chunks.resize(keep);
  m.num_tokens = m.chunks.back().token_begin + m.chunks.back().num_tokens;
  if (m.token_ids.size() > m.num_tokens) m.token_ids.resize(m.num_tokens);
}

class Session {
 public:
  explicit Session(const ReceiverOptions& o) : opt_(o), timer_(io_), wake_(io_), finish_timer_(io_) {}

  ReceiveOutcome run() {
    // Before the clock starts: a node keeps its profiles in memory (one cache for all fetches when
    // the caller shares one).
    profiles_ = opt_.profiles ? opt_.profiles : std::make_shared<ProfileCache>(opt_.profile_dir);
    // and draws the HELLO's nonce (a process's first draw initializes OpenSSL's generator: ~2 ms).
    client_nonce_ = random_nonce();
    connect();
    if (!error_) {
      t0_ = Clock::now();  // time 0: the TCP connection is up (TLS and the handshake count)
      last_rx_ = t0_;
      t_->async_handshake([this](const asio::error_code& ec) {
        if (ec) return fail(ErrorCode::kAuth, "TLS handshake with " + peer() + " failed: " + ec.message());
        start_protocol();
      });
      tick();
      io_.run();
    }
    if (pipeline_) pipeline_->stop();
    if (error_) throw *error_;
    if (outcome_.profile_fetched) profiles_->build_tables(manifest_->profile_hash);  // for the next fetch
    return std::move(outcome_);
  }

 private:
  double now() const { return std::chrono::duration<double>(Clock::now() - t0_).count(); }
  std::string peer() const { return opt_.host + ":" + std::to_string(opt_.port); }

  void connect() {
    tcp::resolver res(io_);
    asio::error_code ec;
    auto eps = res.resolve(opt_.host, std::to_string(opt_.port), ec);
    if (ec) {
      error_.emplace(ErrorCode::kUnavailable, "cannot resolve " + opt_.host + ": " + ec.message());
      return;
    }
    tcp::socket sock(io_);
    bool done = false;
    asio::async_connect(sock, eps, [&](const asio::error_code& e, const tcp::endpoint&) {
      done = true;
      if (e) error_.emplace(ErrorCode::kUnavailable, "cannot connect to " + peer() + ": " + e.message());
    });
    io_.run_for(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt_.connect_timeout_s)));
    if (!done) {
      asio::error_code ignore;
      sock.close(ignore);
      io_.run();  // let the aborted handler run (it references this frame)
      error_.emplace(ErrorCode::kTimeout, "connect to " + peer() + " timed out");
    }
    io_.restart();
    if (error_) return;
    sock.set_option(tcp::no_delay(true));
    if (opt_.tls) {
      TlsClientConfig c = *opt_.tls;
      if (c.server_name.empty()) c.server_name = opt_.host;
      t_ = make_tls_transport(std::move(sock), make_client_tls(c), false, c.server_name);
    } else {
      t_ = make_plain_transport(std::move(sock));
    }
  }

  // HELLO (and, when not authenticating, REQUEST at once: an insecure sender needs no round trip).
  void start_protocol() {
    Hello h;
    h.agent = "kvstream-recv/3";
    h.tenant = opt_.key.empty() ? std::string() : opt_.tenant;
    h.client_nonce = client_nonce_;
    hello_sent_s_ = now();
    send(encode(h));
    if (opt_.key.empty()) send_request();
    read();
  }
  void send_request() {
    // The first estimate (controller) is taken over the reads that answer REQUEST: with
    // authentication the reads before it (HELLO_ACK) are a round trip earlier.
    hs_base_bytes_ = bytes_rx_;
    hs_first_t_ = -1;
    send(encode(Request{opt_.context, uint32_t(std::lround(opt_.slo_s * 1e3)), opt_.policy.name()}));
  }

  void fail(const kvstream::Error& e) {
    if (error_ || finished_) return;
    error_.emplace(e);
    shutdown();
  }
  void fail(ErrorCode code, const std::string& msg) { fail(kvstream::Error(code, msg)); }
  void shutdown() {
    timer_.cancel();
    wake_.cancel();
    finish_timer_.cancel();
    if (t_) t_->close();
    io_.stop();
  }

  void send(std::vector<uint8_t> frame) {
    out_.push_back(std::make_shared<std::vector<uint8_t>>(std::move(frame)));
    if (!writing_) write_next();
  }
  void write_next() {
    if (out_.empty()) {
      writing_ = false;
      return;
    }
    writing_ = true;
    auto buf = out_.front();
    async_write_all(*t_, {asio::buffer(*buf), asio::const_buffer()}, nullptr, [this, buf](const asio::error_code& ec) {
      if (ec == asio::error::broken_pipe || ec == asio::error::connection_reset)
        return fail(ErrorCode::kClosed, "the sender closed the connection before the KV cache was complete (" +
                                            std::to_string(chunks_received_) + " of " + std::to_string(num_chunks()) +
                                            " chunks received)");
      if (ec) return fail(ErrorCode::kClosed, "sending to the sender failed: " + ec.message());
      out_.pop_front();
      write_next();
    });
  }

  void read() {
    t_->async_read_some(asio::buffer(rx_), [this](const asio::error_code& ec, size_t n) {
      if (ec) {
        if (finished_ || error_) return;
        if (ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::ssl::error::stream_truncated)
          return fail(ErrorCode::kClosed, "the sender closed the connection before the KV cache was complete (" +
                                              std::to_string(chunks_received_) + " of " + std::to_string(num_chunks()) +
                                              " chunks received)");
        return fail(ErrorCode::kClosed, "receive failed: " + ec.message());
      }
      last_rx_ = Clock::now();
      if (hs_first_t_ < 0) {  // the first read after REQUEST (controller, issue 14)
        hs_first_t_ = now();
        hs_first_bytes_ = n;
      }
      bytes_rx_ += n;
      try {
        reader_.feed(rx_.data(), n);
        while (auto f = reader_.next()) {
          handle(*f);
          if (error_ || finished_) return;
        }
        progress();
      } catch (const ProtocolError& e) {
        return fail(ErrorCode::kProtocol, std::string("protocol error from the sender: ") + e.what());
      } catch (const kvstream::Error& e) {
        return fail(e);
      } catch (const std::invalid_argument& e) {
        return fail(ErrorCode::kInvalidArgument, e.what());
      } catch (const std::exception& e) {
        return fail(ErrorCode::kInternal, e.what());
      }
      if (!error_ && !finished_) read();
    });
  }

  // Periodic watchdog: stall and total timeouts.
  void tick() {
    timer_.expires_after(std::chrono::milliseconds(20));
    timer_.async_wait([this](const asio::error_code& ec) {
      if (ec || error_ || finished_) return;
      const double idle = std::chrono::duration<double>(Clock::now() - last_rx_).count();
      const bool waiting = !manifest_ || chunks_received_ < num_chunks() || profile_pending_ || !outstanding_.empty();
      if (opt_.cancelled && opt_.cancelled()) return fail(ErrorCode::kCancelled, "the fetch was cancelled");
      if (waiting && idle > opt_.stall_timeout_s)
        return fail(ErrorCode::kStalled, "the sender stalled: no data for " + std::to_string(opt_.stall_timeout_s) +
                                             " s (" + std::to_string(chunks_received_) + " of " +
                                             std::to_string(num_chunks()) + " chunks received)");
      if (now() > opt_.total_timeout_s)
        return fail(ErrorCode::kTimeout, "timed out after " + std::to_string(opt_.total_timeout_s) + " s");
      tick();
    });
  }

  size_t num_chunks() const { return manifest_ ? manifest_->chunks.size() : 0; }

  void handle(const Frame& f) {
    switch (f.type) {
      case FrameType::kHelloAck: return on_hello_ack(decode_hello_ack(f));
      case FrameType::kAuthOk: return on_auth_ok(decode_auth_ok(f));
      case FrameType::kError: {
        const ErrorMsg e = decode_error(f);
        return fail(error_from_wire(e.code, e.message));
      }
      case FrameType::kManifest:
        if (!authenticated_) return fail(ErrorCode::kAuth, "the sender sent a MANIFEST before authenticating");
        return on_manifest(decode_manifest(f));
      case FrameType::kProfile: return on_profile(decode_profile(f));
      case FrameType::kChunkData: return on_chunk(decode_chunk_data(f));
      default:
        return fail(ErrorCode::kProtocol, std::string("unexpected ") + frame_type_name(f.type) + " frame from the sender");
    }
  }

  void on_hello_ack(const HelloAck& a) {
    if (got_ack_) return fail(ErrorCode::kProtocol, "a second HELLO_ACK from the sender");
    got_ack_ = true;
    outcome_.rtt_s = now() - hello_sent_s_;
    if (opt_.key.empty()) {
      if (a.auth != AuthMode::kNone)
        return fail(ErrorCode::kAuth, "the sender at " + peer() + " requires authentication (a tenant and its key)");
      return now_authenticated();
    }
    // A receiver with a key takes KV only from a sender that proves the same key.
    if (a.auth != AuthMode::kHmacSha256)
      return fail(ErrorCode::kAuth, "the sender at " + peer() + " does not authenticate (an insecure sender?)");
    server_nonce_ = a.server_nonce;
    send(encode(AuthMsg{client_proof(opt_.key, opt_.tenant, client_nonce_, server_nonce_)}));
    send_request();
  }

  void on_auth_ok(const AuthOk& a) {
    if (opt_.key.empty() || !got_ack_ || authenticated_) return fail(ErrorCode::kProtocol, "unexpected AUTH_OK frame");
    if (!macs_equal(a.proof, server_proof(opt_.key, opt_.tenant, client_nonce_, server_nonce_)))
      return fail(ErrorCode::kAuth, "the sender at " + peer() + " could not prove tenant '" + opt_.tenant +
                                        "''s key: not the sender it claims to be");
    now_authenticated();
  }

  void now_authenticated() {
    authenticated_ = true;
    reader_.set_max_payload(std::min<uint64_t>(max_payload(FrameType::kManifest), opt_.memory_budget_bytes));
  }

  // The checks of "the receiver does not trust the sender" (docs/PROTOCOL.md): the context fits the
  // model's window, and the cache, the profile still to fetch and the largest frame fit the budget.
  bool manifest_fits(const Manifest& m, uint64_t& max_frame) {
    max_frame = max_payload(FrameType::kError);
    for (const auto& c : m.chunks) {
      max_frame = std::max<uint64_t>(max_frame, uint64_t(c.text_bytes) + kMaxChunkDataFields);
      for (uint32_t b : c.level_bytes) max_frame = std::max<uint64_t>(max_frame, uint64_t(b) + kMaxChunkDataFields);
    }
    const auto cached = profiles_->find(m.profile_hash);
    const bool need_profile = !cached;
    if (need_profile) max_frame = std::max<uint64_t>(max_frame, m.profile_bytes + 70);
    std::optional<KvShape> shape;
    if (opt_.model) {
      const int window = opt_.model->config().seq_len;
      if (uint64_t(m.num_tokens) + 1 > uint64_t(window)) {
        fail(ErrorCode::kInvalidArgument, "context '" + m.context_id + "' has " + std::to_string(m.num_tokens) +
                                              " tokens: with the first token it does not fit the model's window of " +
                                              std::to_string(window));
        return false;
      }
      shape = opt_.model->new_cache(false).shape;
    } else if (!need_profile) {
      shape = cached->profile->shape;
    }
    const uint64_t kv = shape ? kv_cache_bytes(m.num_tokens, *shape) : 0;
    const uint64_t total = kv + (need_profile ? m.profile_bytes : 0) + max_frame;
    if (total > opt_.memory_budget_bytes) {
      fail(ErrorCode::kResourceExhausted, "context '" + m.context_id + "' needs " + mib(total) + " (KV cache " + mib(kv) +
                                              ", profile and largest frame) over the receiver's memory budget of " +
                                              mib(opt_.memory_budget_bytes));
      return false;
    }
    return true;
  }

  void on_manifest(Manifest m) {
    if (manifest_) return fail(ErrorCode::kProtocol, "a second MANIFEST");
    if (m.context_id != opt_.context) return fail(ErrorCode::kProtocol, "the sender sent the manifest of another context");
    if (opt_.max_tokens > 0) truncate(m, opt_.max_tokens);
    uint64_t max_frame = 0;
    if (!manifest_fits(m, max_frame)) return;
    reader_.set_max_payload(max_frame);
    manifest_ = std::move(m);
    spec_ = spec_from_manifest(*manifest_);
    fallback_reason_.assign(manifest_->chunks.size(), std::string());
    is_hedged_.assign(manifest_->chunks.size(), false);
    is_upgraded_.assign(manifest_->chunks.size(), false);
    fallback_bytes_.assign(manifest_->chunks.size(), 0);
    failed_.assign(manifest_->chunks.size(), false);
    ControllerConfig cfg = opt_.controller;
    cfg.slo_s = opt_.slo_s;
    cfg.rtt_s = outcome_.rtt_s > 0 ? outcome_.rtt_s : now();
    cfg.cost.prefill_rate = opt_.prefill_rate;
    cfg.cost.first_token_s = opt_.prefill_rate > 0 ? 1.0 / opt_.prefill_rate : 0.0;
    cfg.allow_text = opt_.model != nullptr;
    if (!cfg.allow_text && opt_.policy.kind == PolicyKind::kText)
      return fail(ErrorCode::kInvalidArgument, "policy text needs the model to recompute");
    cfg.memory = load_link_memory(opt_.link_memory, sender_key(), unix_now());
    ctl_.emplace(spec_, opt_.policy, cfg);
    // controller (issue 14): the first estimate from the answer to REQUEST and the sender's TCP state
    ctl_->on_handshake(bytes_rx_ - hs_base_bytes_, hs_first_bytes_, hs_first_t_, now());
    ctl_->on_link_report(manifest_->link);
    auto cached = profiles_->find(manifest_->profile_hash);
    if (!cached) {  // asked for before any chunk: the sender answers in order, and decoding needs it
      profile_pending_ = true;
      send(encode(ProfileGet{manifest_->profile_hash}));
    }
    // The first requests leave before the pipeline is built (the KV cache's allocation, its
    // threads): that work overlaps their round trip instead of delaying it.
    request_more(0);
    if (cached) {
      profile_ = std::move(cached->profile);
      tables_ = std::move(cached->tables);
      start_pipeline();
    }
  }

  void on_profile(ProfileData p) {
    if (!profile_pending_ || !manifest_ || p.profile_hash != manifest_->profile_hash)
      return fail(ErrorCode::kProtocol, "unexpected PROFILE frame");
    if (hash_hex(codec::fnv1a64(p.bytes)) != manifest_->profile_hash)
      return fail(ErrorCode::kCorrupt, "the profile's bytes do not match its hash");
    auto parsed = codec::parse_profile(p.bytes, "profile from the sender");
    // Its shape sizes the cache: check it against the budget before anything is allocated.
    const uint64_t kv = kv_cache_bytes(manifest_->num_tokens, parsed.shape);
    if (kv + p.bytes.size() > opt_.memory_budget_bytes)
      return fail(ErrorCode::kResourceExhausted, "the KV cache of context '" + manifest_->context_id + "' needs " +
                                                     mib(kv) + ", over the receiver's memory budget of " +
                                                     mib(opt_.memory_budget_bytes));
    profile_ = profiles_->add(manifest_->profile_hash, std::move(parsed), p.bytes).profile;
    profile_pending_ = false;
    outcome_.profile_fetched = true;
    start_pipeline();
    for (auto& [chunk, text, blob] : held_) pipeline_->submit(chunk, text, std::move(blob));
    held_.clear();
  }

  void start_pipeline() {
    if (opt_.on_start) opt_.on_start(*manifest_, *profile_);
    KvCache full(profile_->shape, profile_->model_name, profile_->rope_theta, false);
    if (opt_.model) {
      full = opt_.model->new_cache(false);
      if (!(full.shape == profile_->shape))
        throw kvstream::Error(ErrorCode::kInvalidArgument, "the context is for another model shape than the receiver's model");
    }
    std::vector<DecodePipeline::Chunk> chunks;
    for (const auto& c : manifest_->chunks) chunks.push_back({c.token_begin, c.num_tokens});
    busy_.assign(chunks.size(), 0.0);
    ready_.assign(chunks.size(), 0.0);
    pipeline_ = std::make_unique<DecodePipeline>(
        std::move(full), std::move(chunks), &*profile_, opt_.model, opt_.prefill_rate,
        [this](size_t chunk, double busy) {
          const double t = now();
          asio::post(io_, [this, chunk, busy, t] { on_ready(chunk, busy, t); });
        },
        [this](const std::string& msg) { asio::post(io_, [this, msg] { fail(ErrorCode::kCorrupt, msg); }); },
        manifest_->token_ids,
        [this](size_t chunk, const std::string& why) { asio::post(io_, [this, chunk, why] { on_corrupt(chunk, why); }); },
        tables_, opt_.on_rows, opt_.keep_cache);
    pipeline_->set_on_held([this](size_t, bool) { asio::post(io_, [this] { on_upgrade_held(); }); });
    for (const Hedge& h : extras_) register_extra(h);
    for (const Decision& d : ctl_->decisions()) register_rescue(d);
  }
  void register_rescue(const Decision& d) {
    if (d.rescue_s < std::numeric_limits<double>::infinity()) pipeline_->rescue(d.chunk, at(d.rescue_s), at(d.rescue_latest_s));
  }
  Clock::time_point at(double s) const {  // seconds since the request -> this clock
    return t0_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  }

  // A KV chunk's blob failed to decode: fetch it once more as text and recompute it.
  void on_corrupt(size_t chunk, const std::string& why) {
    if (error_ || finished_) return;
    const auto& d = ctl_->decisions().at(chunk);
    const std::string level = d.option == kText ? "text" : spec_.levels[size_t(d.option)].name;
    const std::string what = "chunk " + std::to_string(chunk) + " (level " + level + ") failed to decode: " + why;
    if (!fallback_reason_[chunk].empty() || !opt_.model || manifest_->chunks[chunk].text_bytes == 0) {
      const std::string why_not = !fallback_reason_[chunk].empty() ? " (already retried)"
                                  : !opt_.model ? "; no model to recompute it from text"
                                                : "; the sender has no text for it";
      if (!opt_.allow_failed_chunks) return fail(ErrorCode::kCorrupt, what + why_not);
      // The chunk fails alone: its rows stay empty, the fetch goes on.
      if (fallback_reason_[chunk].empty()) fallback_reason_[chunk] = why;
      failed_[chunk] = true;
      if (opt_.on_warning) opt_.on_warning("warning: " + what + why_not + "; left failed");
      return on_ready(chunk, -1.0, now());
    }
    fallback_reason_[chunk] = why;
    if (opt_.on_warning) opt_.on_warning("warning: " + what + "; fetching it again as text");
    send(encode(ChunkGet{uint32_t(chunk), kTextLevel}));
    outstanding_.push_back({chunk, kTextLevel, true});
  }

  void on_chunk(ChunkData cd) {
    if (!ctl_ || outstanding_.empty()) return fail(ErrorCode::kProtocol, "unrequested CHUNK_DATA");
    const Pending p = outstanding_.front();
    const size_t k = p.chunk;
    // controller (issue 14): a CANCEL that reached the sender in time replaced the answer
    const bool replaced = p.replacement != kNoReplacement && cd.level == p.replacement && cd.level != p.level;
    if (cd.index != k || (cd.level != p.level && !replaced) || cd.status != kChunkServed)
      return fail(ErrorCode::kProtocol, "the sender sent chunk " + std::to_string(cd.index) + " level " +
                                            std::to_string(cd.level) + (cd.status != kChunkServed ? " (cancelled)" : "") +
                                            ", expected chunk " + std::to_string(k) + " level " + std::to_string(p.level));
    outstanding_.pop_front();
    ctl_->on_link_report(cd.link);
    if (replaced) ctl_->on_served(k, option_of(cd.level));
    if (p.extra) {  // a hedge or an upgrade: the pipeline holds it (controller, issue 14)
      extra_bytes_ += cd.blob.size() + kChunkFrameOverhead;
    } else if (p.retry) {
      fallback_bytes_[k] = wire_bytes(spec_, k, kText);
    } else {
      const double t = now();
      ctl_->on_first_byte(k, t, wire_bytes(spec_, k, ctl_->decisions()[k].option));
      ctl_->on_last_byte(k, t);
      ++chunks_received_;
    }
    const bool text = cd.level == kTextLevel;
    if (pipeline_) pipeline_->submit(k, text, std::move(cd.blob));
    else held_.push_back({k, text, std::move(cd.blob)});
  }

  // Marks the chunks that fell back to text in a result's chunk records.
  void mark_fallbacks(StreamResult& r) const {
    for (auto& c : r.chunks) {
      if (c.index >= fallback_reason_.size() || fallback_reason_[c.index].empty()) continue;
      c.fallback = failed_[c.index] ? "failed" : "text";
      c.fallback_reason = fallback_reason_[c.index];
      c.fallback_bytes = fallback_bytes_[c.index];
    }
  }

  void on_ready(size_t chunk, double busy, double t) {
    if (error_ || finished_) return;
    busy_[chunk] = std::max(busy, 0.0);
    ready_[chunk] = t;
    // A fallback chunk's worker time is a recompute, not its level's decode, and a hedged chunk
    // served by its KV took a decode, not a recompute: not cost samples.
    const bool hedge_served = is_hedged_[chunk] && !pipeline_->served_by_text(chunk);
    const bool kv_rescued = pipeline_->rescued(chunk) && ctl_->decisions()[chunk].option != kText;
    const bool own_cost = fallback_reason_[chunk].empty() && !hedge_served && !kv_rescued;
    ctl_->on_ready(chunk, t, own_cost ? busy : -1.0);
    ++chunks_ready_;
    if (opt_.on_chunk) {
      StreamResult tmp;
      fill_chunks(tmp, *ctl_, busy_, ready_);
      mark_fallbacks(tmp);
      if (chunk < tmp.chunks.size()) opt_.on_chunk(tmp.chunks[chunk]);
    }
    if (chunks_ready_ == num_chunks()) maybe_finish();
  }

  // After processing the complete frames of a read: the first byte of the chunk in flight, and
  // the next requests when the pipeline window says so.
  void progress() {
    if (!ctl_) return;
    const size_t partial = reader_.buffered();
    if (partial > 0 && !profile_pending_ && !outstanding_.empty() && !outstanding_.front().retry &&
        !outstanding_.front().extra)
      ctl_->on_first_byte(outstanding_.front().chunk, now(), partial);
    check_stall();
    uint64_t unreceived = 0;
    if (!outstanding_.empty()) {
      const Pending& last = outstanding_.back();
      unreceived = last.retry ? wire_bytes(spec_, last.chunk, kText) : ctl_->decisions()[last.chunk].bytes;
      if (outstanding_.size() == 1 && !profile_pending_) unreceived -= std::min<uint64_t>(unreceived, partial);
    }
    request_more(unreceived);
  }

  void request_more(uint64_t unreceived) {
    while (ctl_->request_due(unreceived, now())) {
      const Decision d = ctl_->choose(now());
      if (predicted_ < 0 && opt_.policy.kind == PolicyKind::kAdaptive) predicted_ = d.predicted_ttft_s;
      const uint16_t level = wire_level(d.option);
      send(encode(ChunkGet{uint32_t(d.chunk), level}));
      outstanding_.push_back({d.chunk, level, false});
      unreceived = d.bytes;
      if (pipeline_) register_rescue(d);
    }
    if (ctl_->next_chunk() == num_chunks() && !extras_asked_) request_extras();
    arm_wakeup();
  }

  // ---- controller (issue 14): hedges and upgrades, after every planned request ----
  void request_extras() {
    extras_asked_ = true;
    extras_ = ctl_->hedges(now());
    // Rows handed to on_rows (an embedding's layout) are final: no upgrade may rewrite them.
    if (opt_.on_rows || !opt_.keep_cache)
      extras_.erase(std::remove_if(extras_.begin(), extras_.end(), [](const Hedge& h) { return h.upgrade; }),
                    extras_.end());
    for (const Hedge& h : extras_) {
      const uint16_t level = wire_level(h.option);
      send(encode(ChunkGet{uint32_t(h.chunk), level}));
      Pending p{h.chunk, level, false};
      p.extra = true;
      outstanding_.push_back(p);
      if (h.upgrade) {
        ++upgrades_asked_;
        upgrade_deadline_ = h.deadline_s;
      } else {
        is_hedged_[h.chunk] = true;
      }
      if (pipeline_) register_extra(h);
    }
  }
  void register_extra(const Hedge& h) {
    if (h.upgrade) pipeline_->upgrade(h.chunk);
    else pipeline_->hedge(h.chunk, at(h.deadline_s));
  }
  void on_upgrade_held() {
    ++upgrades_held_;
    if (chunks_ready_ == num_chunks()) maybe_finish();
  }
  // Every chunk is ready: wait for the upgrades until their deadline at most.
  void maybe_finish() {
    if (finished_ || error_) return;
    if (upgrades_held_ >= upgrades_asked_ || now() >= upgrade_deadline_) return finish();
    finish_timer_.expires_at(t0_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(upgrade_deadline_)));
    finish_timer_.async_wait([this](const asio::error_code& ec) {
      if (!ec) maybe_finish();
    });
  }

  // ---- controller (issue 14): wake-ups, stalls, CANCEL, the link memory ----
  uint16_t wire_level(int option) const { return option == kText ? kTextLevel : spec_.levels[size_t(option)].id; }
  int option_of(uint16_t level) const {
    if (level == kTextLevel) return kText;
    for (size_t l = 0; l < spec_.levels.size(); ++l)
      if (spec_.levels[l].id == level) return int(l);
    return kText;
  }
  std::string sender_key() const { return opt_.host + ":" + std::to_string(opt_.port); }
  static double unix_now() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  }
  // The controller asked to be woken at next_wakeup() even if no byte arrives.
  void arm_wakeup() {
    if (!ctl_ || finished_ || error_) return;
    const double at = ctl_->next_wakeup(now());
    if (!(at < 1e9)) return;
    wake_.expires_at(t0_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(at)));
    wake_.async_wait([this](const asio::error_code& ec) {
      if (ec || finished_ || error_) return;
      progress();
    });
  }
  // The chunk in flight is past its deadline: cap the estimate, offer the chunks behind it for
  // replacement (a CANCEL naming the new level; the sender answers either way).
  void check_stall() {
    const double t = now();
    if (t < ctl_->watch_deadline() || outstanding_.empty()) return;
    const Pending& front = outstanding_.front();
    ctl_->on_stalled(t, front.retry || profile_pending_ ? 0 : reader_.buffered());
    for (const Replacement& r : ctl_->replacements()) {
      for (auto& p : outstanding_) {
        if (p.retry || p.chunk != r.chunk || p.replacement != kNoReplacement) continue;
        p.replacement = wire_level(r.option);
        send(encode(Cancel{uint32_t(r.chunk), p.replacement}));
      }
    }
  }
  void remember_link() {
    if (opt_.link_memory.empty() || !ctl_) return;
    try {
      store_link_memory(opt_.link_memory, sender_key(), ctl_->estimator().to_memory(), unix_now());
    } catch (const std::exception& e) {
      if (opt_.on_warning) opt_.on_warning(std::string("warning: ") + e.what());
    }
  }
  // ---- end controller (issue 14) ----

  void finish() {
    const double t_kv = now();
    const auto upgraded = pipeline_->apply_upgrades();
    for (size_t j : upgraded) is_upgraded_[j] = true;
    KvCache kv = pipeline_->take();
    double first_token_s = 0;
    if (opt_.model) {
      const auto t1 = Clock::now();
      const auto logits = opt_.model->next_logits(kv, opt_.query_token);
      outcome_.result.first_token = int(std::max_element(logits.begin(), logits.end()) - logits.begin());
      if (opt_.prefill_rate > 0) {
        const double left = 1.0 / opt_.prefill_rate - std::chrono::duration<double>(Clock::now() - t1).count();
        if (left > 0) std::this_thread::sleep_for(std::chrono::duration<double>(left));
      }
      first_token_s = std::chrono::duration<double>(Clock::now() - t1).count();
    }
    const double ttft = now();
    finished_ = true;
    send(encode_end());
    auto& r = outcome_.result;
    r.context = opt_.context;
    r.policy = opt_.policy.name();
    r.slo_ms = opt_.slo_s * 1e3;
    r.ttft_ms = ttft * 1e3;
    r.slo_met = r.ttft_ms <= r.slo_ms;
    r.bytes = bytes_rx_;
    double last = 0;
    for (const auto& f : ctl_->facts()) last = std::max(last, f.last_byte_t);
    r.last_byte_ms = last * 1e3;
    r.first_token_ms = first_token_s * 1e3;
    (void)t_kv;
    r.predicted_ttft_ms = predicted_ >= 0 ? predicted_ * 1e3 : -1;
    r.estimate_sources = ctl_->estimator().sources();
    remember_link();
    fill_chunks(r, *ctl_, busy_, ready_);
    mark_fallbacks(r);
    std::vector<int> options, content;  // what the controller chose; what the cache now holds
    std::vector<int> upgrade_option(num_chunks(), -2), hedge_option(num_chunks(), -2);
    for (const Hedge& h : extras_) (h.upgrade ? upgrade_option : hedge_option)[h.chunk] = h.option;
    for (const auto& d : ctl_->decisions()) {
      options.push_back(d.option);
      int c = fallback_reason_[d.chunk].empty() && !pipeline_->rescued(d.chunk) ? d.option : kText;
      if (is_hedged_[d.chunk] && !pipeline_->served_by_text(d.chunk)) c = hedge_option[d.chunk];
      if (is_upgraded_[d.chunk]) c = upgrade_option[d.chunk];
      content.push_back(c);
    }
    for (auto& c : r.chunks) {
      if (c.index < num_chunks() && is_hedged_[c.index]) c.served_by = pipeline_->served_by_text(c.index) ? "text" : "hedge";
      if (c.index < num_chunks() && upgrade_option[c.index] != -2) c.served_by = is_upgraded_[c.index] ? "upgrade" : "base";
      if (c.index < num_chunks() && pipeline_->rescued(c.index)) c.served_by = "rescue";
      if (c.served_by == "hedge" || c.served_by == "upgrade") c.served_level = spec_.levels[size_t(content[c.index])].name;
    }
    ladder_quality(spec_, content, r.greedy_agreement, r.ppl_delta_pct);
    r.quality_source = "ladder";
    r.plan = plan_to_string(spec_, options);
    outcome_.kv = std::move(kv);
    outcome_.profile = profile_;
    // Give the END frame a moment to leave, then close.
    asio::post(io_, [this] { shutdown(); });
  }

  const ReceiverOptions& opt_;
  asio::io_context io_;
  std::unique_ptr<Transport> t_;
  asio::steady_timer timer_;
  asio::steady_timer wake_;  // the controller's wake-ups (controller, issue 14)
  asio::steady_timer finish_timer_;  // waiting for upgrades until their deadline
  double hs_first_t_ = -1;   // the first read after REQUEST: when, and how many bytes
  std::vector<Hedge> extras_;  // hedges and upgrades asked for
  bool extras_asked_ = false;
  size_t upgrades_asked_ = 0, upgrades_held_ = 0;
  double upgrade_deadline_ = 0;
  uint64_t extra_bytes_ = 0;
  std::vector<bool> is_hedged_, is_upgraded_;
  uint64_t hs_first_bytes_ = 0, hs_base_bytes_ = 0;  // hs_base_bytes_: bytes read before REQUEST was sent
  Clock::time_point t0_, last_rx_;
  double hello_sent_s_ = 0;
  Nonce client_nonce_{}, server_nonce_{};
  std::array<uint8_t, 65536> rx_{};
  // Until the sender is authenticated only small frames are read; then the manifest, then at most
  // the largest frame the manifest announces.
  FrameReader reader_{Peer::kSender, kMaxPreAuthPayload};
  std::deque<std::shared_ptr<std::vector<uint8_t>>> out_;
  bool writing_ = false, finished_ = false, profile_pending_ = false, got_ack_ = false, authenticated_ = false;
  std::optional<kvstream::Error> error_;
  std::optional<Manifest> manifest_;
  StreamSpec spec_;
  std::optional<Controller> ctl_;
  std::shared_ptr<ProfileCache> profiles_;
  std::shared_ptr<const codec::Profile> profile_;
  DecodePipeline::Tables tables_;  // of profile_, when it was cached
  std::unique_ptr<DecodePipeline> pipeline_;
  struct Pending {
    size_t chunk;
    uint16_t level;  // wire level asked for
    bool retry;      // a text re-fetch after a corrupt blob (not a controller decision)
    uint16_t replacement = kNoReplacement;  // a CANCEL asked for this level instead
    bool extra = false;  // a hedge or an upgrade (controller, issue 14)
  };
  std::deque<Pending> outstanding_;  // requests in the order the sender answers them
  std::vector<std::string> fallback_reason_;  // per chunk: why it fell back to text ("" = it did not)
  std::vector<uint64_t> fallback_bytes_;
  std::vector<bool> failed_;                  // per chunk: left failed (allow_failed_chunks)
  struct Held {
    size_t chunk;
    bool text;
    std::vector<uint8_t> blob;
  };
  std::vector<Held> held_;
  std::vector<double> busy_, ready_;
  size_t chunks_received_ = 0, chunks_ready_ = 0;
  uint64_t bytes_rx_ = 0;
  double predicted_ = -1;
  ReceiveOutcome outcome_;
};

}  // namespace

ReceiveOutcome receive(const ReceiverOptions& opt) {
  if (!valid_context_id(opt.context))
    throw kvstream::Error(ErrorCode::kInvalidArgument, "invalid context id '" + opt.context + "'");
  if (!(opt.slo_s > 0)) throw kvstream::Error(ErrorCode::kInvalidArgument, "the SLO must be positive");
  if (!opt.keep_cache && opt.model)
    throw kvstream::Error(ErrorCode::kInvalidArgument, "a receiver with a model must keep its KV cache");
  if (!opt.key.empty() && !valid_tenant(opt.tenant))
    throw kvstream::Error(ErrorCode::kInvalidArgument, "invalid tenant name '" + opt.tenant + "'");
  Session s(opt);
  return s.run();
}

void measure_quality(const model::Model& m, const KvCache& reference, const KvCache& received,
                     int32_t query_token, int continuation, double& agreement, double& ppl_delta_pct) {
  if (reference.num_tokens() != received.num_tokens())
    throw std::invalid_argument("reference and received caches differ in length");
  KvCache ref = reference;
  if (ref.keys_pre_rope) rope_apply_to_keys(ref);
  std::vector<int32_t> scored = {query_token};
  KvCache g = ref;
  int32_t tok = query_token;
  for (int i = 0; i < continuation; ++i) {
    const auto logits = m.step(g, tok);
    tok = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    scored.push_back(tok);
  }
  KvCache rcv = received;
  rcv.model_name = ref.model_name;
  const auto a = m.score(ref, scored);
  const auto b = m.score(rcv, scored);
  agreement = model::top1_agreement(a, b);
  ppl_delta_pct = 100.0 * (b.perplexity / a.perplexity - 1.0);
}

}  // namespace kvstream::streamer
