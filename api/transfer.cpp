// Transfer: the receiver on a thread of its own, writing each ready chunk into the caller's layout
// (see include/kvstream/transfer.h).
//
// Today every chunk is decoded into the receiver's fp32 scratch rows and converted from there into
// the layout on the decode worker (api/rows.h; the receiver assembles no cache of its own), before
// the chunk counts as ready; so a chunk's tokens are in the layout when poll() first counts them.
#include "kvstream/transfer.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "api/errors.h"
#include "api/security.h"
#include "api/rows.h"
#include "streamer/auth.h"
#include "streamer/receiver.h"
#include "streamer/wire.h"

namespace kvstream {

namespace {
enum class ChunkState : uint8_t { kPending, kReady, kFailed };
}  // namespace

struct Transfer::Impl {
  FetchOptions opt;
  KvLayout layout;
  uint64_t requested = 0;  // tokens asked for: [0, requested)
  std::vector<uint8_t> key;  // the tenant's secret (empty: no authentication)

  mutable std::mutex mu;
  mutable std::condition_variable cv;
  // guarded by mu
  bool have_manifest = false;
  std::vector<TokenRange> ranges;  // per chunk, clipped to requested
  std::vector<ChunkState> state;
  std::vector<int32_t> token_ids;
  TransferStatus st;
  std::optional<Error> error;
  std::optional<streamer::ReceiveOutcome> outcome;

  std::atomic<bool> cancel{false};
  std::thread thread;

  void on_manifest(const streamer::Manifest& m, const codec::Profile& p);
  void on_chunk(const streamer::ChunkRecord& c);
  void run();
  void update_prefix();  // with mu held
  TransferResult result();
};

void Transfer::Impl::on_manifest(const streamer::Manifest& m, const codec::Profile& p) {
  if (p.shape != layout.shape)
    throw Error(ErrorCode::kInvalidArgument,
                "context '" + m.context_id + "' is of a model with " + std::to_string(p.shape.n_layers) + " layers x " +
                    std::to_string(p.shape.n_kv_heads) + " KV heads x " + std::to_string(p.shape.head_dim) +
                    ", the layout is for " + std::to_string(layout.shape.n_layers) + " x " +
                    std::to_string(layout.shape.n_kv_heads) + " x " + std::to_string(layout.shape.head_dim));
  std::lock_guard lock(mu);
  have_manifest = true;
  for (const auto& c : m.chunks) {
    const uint64_t b = std::min<uint64_t>(c.token_begin, requested);
    const uint64_t e = std::min<uint64_t>(uint64_t(c.token_begin) + c.num_tokens, requested);
    ranges.push_back({b, e});
  }
  state.assign(ranges.size(), ChunkState::kPending);
  const uint64_t total = ranges.empty() ? 0 : ranges.back().end;
  token_ids.assign(m.token_ids.begin(), m.token_ids.begin() + long(std::min<uint64_t>(total, m.token_ids.size())));
  st.tokens_total = total;
  st.chunks_total = uint32_t(ranges.size());
}

void Transfer::Impl::update_prefix() {
  uint64_t prefix = 0;
  for (size_t i = 0; i < ranges.size() && state[i] == ChunkState::kReady; ++i) prefix = ranges[i].end;
  st.prefix_tokens = prefix;
}

void Transfer::Impl::on_chunk(const streamer::ChunkRecord& c) {
  ChunkEvent ev;
  {
    std::lock_guard lock(mu);
    if (c.index >= state.size()) return;
    const bool ok = c.fallback != "failed";
    state[c.index] = ok ? ChunkState::kReady : ChunkState::kFailed;
    if (ok) {
      ++st.chunks_ready;
      st.tokens_ready += ranges[c.index].end - ranges[c.index].begin;
      update_prefix();
    } else {
      ++st.chunks_failed;
    }
    ev.index = uint32_t(c.index);
    ev.tokens = ranges[c.index];
    ev.ok = ok;
    ev.level = c.level;
    ev.bytes = c.bytes;
    ev.ready_ms = c.ready_ms;
    ev.error = ok ? "" : c.fallback_reason;
  }
  cv.notify_all();
  if (opt.on_chunk) opt.on_chunk(ev);
}

void Transfer::Impl::run() {
  streamer::ReceiverOptions ro;
  ro.host = opt.host;
  ro.port = opt.port;
  ro.context = opt.context;
  ro.slo_s = opt.slo_ms / 1e3;
  ro.policy = streamer::parse_policy(opt.policy);
  ro.controller.prior_mbps = opt.prior_mbps;
  ro.profile_dir = opt.profile_cache_dir;
  ro.connect_timeout_s = opt.connect_timeout_s;
  ro.stall_timeout_s = opt.stall_timeout_s;
  ro.total_timeout_s = opt.total_timeout_s;
  ro.max_tokens = uint32_t(std::min<uint64_t>(requested, streamer::kMaxManifestTokens));
  ro.allow_failed_chunks = opt.partial;
  ro.tenant = opt.tenant;
  ro.key = key;
  if (!opt.tls_ca_file.empty()) ro.tls = streamer::TlsClientConfig{opt.tls_ca_file, opt.tls_server_name, "", ""};
  ro.cancelled = [this] { return cancel.load(); };
  ro.on_start = [this](const streamer::Manifest& m, const codec::Profile& p) { on_manifest(m, p); };
  ro.keep_cache = false;  // chunks go straight from the decoder's scratch rows to the layout
  ro.on_rows = [this](size_t, const KvCache& src, uint32_t src_row, uint32_t begin, uint32_t n) {
    const uint64_t end = std::min<uint64_t>(uint64_t(begin) + n, requested);
    if (end > begin) api::to_layout(src, src_row, begin, uint32_t(end - begin), layout);
  };
  ro.on_chunk = [this](const streamer::ChunkRecord& c) { on_chunk(c); };
  std::optional<Error> err;
  std::optional<streamer::ReceiveOutcome> out;
  try {
    out = streamer::receive(ro);
  } catch (...) {
    err = api::current_error();
  }
  {
    std::lock_guard lock(mu);
    outcome = std::move(out);
    st.done = true;
    if (err) {
      error = err;
      st.error = err->code();
      st.message = err->what();
    } else if (st.chunks_failed > 0) {
      st.error = ErrorCode::kCorrupt;
      st.message = std::to_string(st.chunks_failed) + " chunk(s) could not be decoded";
    }
    st.ok = !err && st.chunks_failed == 0;
  }
  cv.notify_all();
}

TransferResult Transfer::Impl::result() {
  std::lock_guard lock(mu);
  TransferResult r;
  r.context = opt.context;
  r.tokens = st.tokens_total;
  r.token_ids = token_ids;
  if (outcome) {
    r.ttft_ms = outcome->result.ttft_ms;
    r.bytes = outcome->result.bytes;
    r.plan = outcome->result.plan;
    r.report_json = outcome->result.to_json().dump();
  }
  // Every requested token not in the layout, as maximal ranges in token order.
  auto add = [&r](TokenRange t) {
    if (t.end <= t.begin) return;
    if (!r.failed.empty() && r.failed.back().end == t.begin) r.failed.back().end = t.end;
    else r.failed.push_back(t);
  };
  if (!have_manifest) {
    add({0, requested});
  } else {
    for (size_t i = 0; i < ranges.size(); ++i)
      if (state[i] != ChunkState::kReady) add(ranges[i]);
  }
  r.complete = r.failed.empty();
  r.error = st.error;
  r.message = st.message;
  return r;
}

Transfer::Transfer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

std::unique_ptr<Transfer> Transfer::start(const FetchOptions& opt, const KvLayout& layout) {
  return api::guarded([&] {
    layout.validate();
    if (layout.memory != MemoryKind::kHost)
      throw Error(ErrorCode::kInvalidArgument, "fetching into CUDA device memory is not supported yet");
    if (!streamer::valid_context_id(opt.context))
      throw Error(ErrorCode::kInvalidArgument, "invalid context id '" + opt.context + "'");
    if (!(opt.slo_ms > 0)) throw Error(ErrorCode::kInvalidArgument, "the SLO must be positive");
    const auto policy = streamer::parse_policy(opt.policy);  // std::invalid_argument -> kInvalidArgument
    if (policy.kind == streamer::PolicyKind::kText || policy.kind == streamer::PolicyKind::kOracle)
      throw Error(ErrorCode::kInvalidArgument, "policy " + opt.policy + " cannot fetch into a layout (no text, no oracle)");
    if (opt.tenant.empty() != opt.keys_file.empty())
      throw Error(ErrorCode::kInvalidArgument, "tenant and keys_file go together");
    if (opt.tls_ca_file.empty() && !opt.tls_server_name.empty())
      throw Error(ErrorCode::kInvalidArgument, "tls_server_name needs tls_ca_file");
    auto impl = std::make_unique<Impl>();
    if (!opt.tenant.empty()) impl->key = streamer::tenant_key(opt.keys_file, opt.tenant);
    impl->opt = opt;
    impl->layout = layout;
    impl->requested = opt.max_tokens > 0 ? std::min(opt.max_tokens, layout.max_tokens()) : layout.max_tokens();
    if (impl->requested == 0) throw Error(ErrorCode::kInvalidArgument, "the layout takes no tokens");
    Impl* p = impl.get();
    std::unique_ptr<Transfer> t(new Transfer(std::move(impl)));
    p->thread = std::thread([p] { p->run(); });
    return t;
  });
}

Transfer::~Transfer() {
  impl_->cancel = true;
  if (impl_->thread.joinable()) impl_->thread.join();
}

TransferStatus Transfer::poll() const {
  std::lock_guard lock(impl_->mu);
  return impl_->st;
}

bool Transfer::wait_tokens(uint64_t n, double timeout_s) const {
  std::unique_lock lock(impl_->mu);
  auto ready = [&] { return impl_->st.prefix_tokens >= n || impl_->st.done; };
  if (timeout_s < 0) impl_->cv.wait(lock, ready);
  else impl_->cv.wait_for(lock, std::chrono::duration<double>(timeout_s), ready);
  return impl_->st.prefix_tokens >= n;
}

TransferResult Transfer::wait() {
  if (impl_->thread.joinable()) impl_->thread.join();
  std::optional<Error> err;
  {
    std::lock_guard lock(impl_->mu);
    err = impl_->error;
  }
  if (err) {
    const ErrorCode c = err->code();
    if (!impl_->opt.partial || c == ErrorCode::kInvalidArgument || c == ErrorCode::kCancelled) throw *err;
  }
  return impl_->result();
}

void Transfer::cancel() { impl_->cancel = true; }

TransferResult fetch(const FetchOptions& opt, const KvLayout& layout) { return Transfer::start(opt, layout)->wait(); }

}  // namespace kvstream
