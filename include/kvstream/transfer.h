// kvstream/transfer.h — fetching a context's KV cache from a kvstream sender into a caller's layout
// (public API): a non-blocking Transfer, and fetch() = start + wait.
//
// A Transfer connects to a sender (kvstream send, or a kvstream::Server), fetches the context's
// manifest and its chunks (each at the level the adaptation policy picks for the TTFT SLO), decodes
// each chunk on a kvstream worker thread while the next one is on the wire, and writes every
// decoded chunk's tokens into the caller's KvLayout as soon as that chunk is ready. The caller
// polls (poll()), blocks until a prefix is ready (wait_tokens()), or is called back per chunk
// (FetchOptions::on_chunk).
//
// Text chunks: kvstream recomputes a chunk from its tokens only with a reference model, which an
// embedding engine does not hand to kvstream; so a Transfer never fetches text. A chunk that fails
// to decode (corrupt blob) is therefore a failed token range: the engine prefills it itself, like
// any token it does not hold. With FetchOptions::partial such ranges (and, when the fetch stops
// early, every chunk not ready by then) are reported in TransferResult::failed instead of an
// exception.
//
// Contract:
// - start() validates the options and the layout and returns at once (Error(kInvalidArgument)
//   otherwise); the network work runs on kvstream's threads. The layout's memory must stay valid
//   until the Transfer is finished: wait() returned or threw, or the Transfer was destroyed.
// - Tokens are written only inside the layout (layout.h) and only for tokens of chunks that
//   decoded completely and verifiably (CRC, positions, token ids against the manifest): a token's
//   values are final when poll() first counts it. Nothing is written once the transfer is
//   finished (poll().done; wait() returned or threw) or destroyed.
// - Every exception is a kvstream::Error with its code: kInvalidArgument, kUnavailable (cannot
//   connect), kUnknownContext, kStalled, kClosed, kTimeout, kProtocol, kCorrupt (a chunk that
//   cannot be decoded, without partial), kVersion, kAuth, kCancelled, kResourceExhausted.
// - poll() and wait_tokens() never throw for a failed fetch: they report it (status.error) and
//   wait() throws it (or, with partial, returns the partial result).
// - Callbacks run on kvstream's network thread, one at a time, in the order chunks become ready;
//   they must return quickly and must not call wait()/wait_tokens() of the same Transfer.
// - Thread-safe: poll(), wait_tokens() and cancel() may be called from any thread, any number of
//   times; wait() once.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kvstream/error.h"
#include "kvstream/layout.h"

namespace kvstream {

// A half-open range of token positions [begin, end) of the context.
struct TokenRange {
  uint64_t begin = 0, end = 0;
  bool operator==(const TokenRange& o) const { return begin == o.begin && end == o.end; }
};

// One chunk that became ready (ok) or failed.
struct ChunkEvent {
  uint32_t index = 0;
  TokenRange tokens;
  bool ok = true;
  std::string level;   // the level it was fetched at ("failed" chunks: the level tried)
  uint64_t bytes = 0;  // wire bytes
  double ready_ms = 0; // since the request was sent
  std::string error;   // why it failed (!ok)
};

struct FetchOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string context;           // the id the sender serves (a .kvs name, or a store key from Lookup)
  double slo_ms = 1000;          // TTFT SLO the adaptation policy plans for
  std::string policy = "adaptive";  // adaptive | fixed:LEVEL | q8 | cachegen | plan:L0,L1,...
  uint64_t max_tokens = 0;       // fetch only the chunks holding the first max_tokens tokens (0: all
                                 // the layout can take, i.e. layout.max_tokens())
  bool partial = false;          // report failed chunks as TransferResult::failed, not as an error
  std::string profile_cache_dir; // directory caching codec profiles by hash (empty: memory only)
  double prior_mbps = 1.0;       // throughput assumed before the first measurement
  double connect_timeout_s = 5;
  double stall_timeout_s = 5;    // the sender sends nothing for this long -> kStalled
  double total_timeout_s = 120;  // the whole fetch -> kTimeout
  std::function<void(const ChunkEvent&)> on_chunk;  // may be empty
  // Authentication (docs/PROTOCOL.md, "Authentication, tenants and TLS"): with keys_file, the
  // transfer proves tenant's secret (its line in keys_file: 'TENANT HEXSECRET', mode 0600) and
  // requires the sender to prove it too (kAuth otherwise). Both empty: no authentication (the
  // sender must be insecure).
  std::string tenant;
  std::string keys_file;
  // TLS: verify the sender's certificate against tls_ca_file (PEM; empty: no TLS), for the name
  // tls_server_name (empty: host).
  std::string tls_ca_file;
  std::string tls_server_name;
};

struct TransferStatus {
  uint64_t prefix_tokens = 0;   // tokens 0..prefix_tokens-1 are all in the layout
  uint64_t tokens_ready = 0;    // tokens in the layout (any chunk)
  uint64_t tokens_total = 0;    // tokens being fetched (0 until the manifest arrived)
  uint32_t chunks_ready = 0;    // chunks in the layout
  uint32_t chunks_failed = 0;
  uint32_t chunks_total = 0;
  bool done = false;            // finished: complete, failed or cancelled
  bool ok = false;              // done and every chunk is in the layout
  ErrorCode error = ErrorCode::kInternal;  // done && !ok: why (meaningful only then)
  std::string message;          // done && !ok: the error's message
};

struct TransferResult {
  std::string context;
  uint64_t tokens = 0;                  // tokens fetched (whole chunks; <= layout.max_tokens())
  std::vector<int32_t> token_ids;       // the context's token ids for those tokens (the manifest's)
  std::vector<TokenRange> failed;       // ranges not in the layout (partial results only)
  bool complete = true;                 // failed is empty
  double ttft_ms = 0;                   // request sent -> every token in the layout
  uint64_t bytes = 0;                   // wire bytes received
  std::string plan;                     // level per chunk, "q8,standard,..."
  std::string report_json;              // the receiver's result JSON (docs/PROTOCOL.md "Result JSON")
  ErrorCode error = ErrorCode::kInternal;  // !complete: why the first range failed
  std::string message;
};

class Transfer {
 public:
  // Starts fetching opt.context into `layout` (see contract). Throws Error(kInvalidArgument).
  static std::unique_ptr<Transfer> start(const FetchOptions& opt, const KvLayout& layout);
  // Cancels a transfer still running and waits until kvstream no longer touches the layout.
  ~Transfer();
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;

  TransferStatus poll() const;
  // Blocks until tokens 0..n-1 are in the layout (true), the transfer finished without them
  // (false), or timeout_s passed (false; < 0 = no timeout).
  bool wait_tokens(uint64_t n, double timeout_s = -1) const;
  // Blocks until the transfer is finished. Returns the result, or throws the fetch's Error. With
  // partial it returns for every error but kInvalidArgument and kCancelled: `failed` then covers
  // every requested token not in the layout (all of [0, requested) when no manifest arrived,
  // requested = max_tokens or layout.max_tokens()).
  TransferResult wait();
  // Asks the transfer to stop; it finishes with kCancelled within about 20 ms.
  void cancel();

  struct Impl;

 private:
  explicit Transfer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Transfer::start(opt, layout)->wait().
TransferResult fetch(const FetchOptions& opt, const KvLayout& layout);

}  // namespace kvstream
