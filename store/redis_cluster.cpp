// Redis Cluster client on hiredis (see redis_cluster.h).
#include "store/redis_cluster.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <thread>

#include "kvstream/error.h"
#include "streamer/endpoint.h"

namespace kvstream::store::redis {

using Clock = std::chrono::steady_clock;

namespace {

Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(std::max(0.0, s)));
}

timeval to_timeval(double s) {
  timeval tv{};
  const auto us = static_cast<long long>(std::max(0.0, s) * 1e6);
  tv.tv_sec = static_cast<time_t>(us / 1000000);
  tv.tv_usec = static_cast<suseconds_t>(us % 1000000);
  return tv;
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

Reply convert(const redisReply* r) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING: out.type = Reply::Type::kString; break;
    case REDIS_REPLY_STATUS: out.type = Reply::Type::kStatus; break;
    case REDIS_REPLY_ERROR: out.type = Reply::Type::kError; break;
    case REDIS_REPLY_INTEGER: out.type = Reply::Type::kInteger; break;
    case REDIS_REPLY_ARRAY: out.type = Reply::Type::kArray; break;
    default: out.type = Reply::Type::kNil; break;
  }
  if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR)
    out.str.assign(r->str, r->len);
  if (r->type == REDIS_REPLY_INTEGER) out.integer = r->integer;
  if (r->type == REDIS_REPLY_ARRAY) {
    out.elements.reserve(r->elements);
    for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
  }
  return out;
}

Reply unavailable(std::string why) {
  Reply r;
  r.type = Reply::Type::kUnavailable;
  r.str = std::move(why);
  return r;
}

// "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381" -> the endpoint.
std::optional<Endpoint> redirect_target(std::string_view msg) {
  const size_t sp = msg.rfind(' ');
  if (sp == std::string_view::npos) return std::nullopt;
  try {
    return parse_endpoint(msg.substr(sp + 1));
  } catch (const kvstream::Error&) {
    return std::nullopt;
  }
}

// Replies after which the same command is simply tried again later.
bool retryable(std::string_view err) {
  return starts_with(err, "TRYAGAIN") || starts_with(err, "CLUSTERDOWN") || starts_with(err, "LOADING") ||
         starts_with(err, "MASTERDOWN") || starts_with(err, "READONLY");
}

}  // namespace

Endpoint parse_endpoint(std::string_view s) {
  try {
    auto [host, port] = streamer::parse_host_port(std::string(s), "Redis address");
    if (port != 0) return Endpoint{std::move(host), port};
  } catch (const std::invalid_argument&) {
  }
  throw kvstream::Error(kvstream::ErrorCode::kInvalidArgument, "Redis address '" + std::string(s) + "' is not HOST:PORT");
}

struct Cluster::Conn {
  redisContext* ctx = nullptr;
  bool readonly = false;      // READONLY sent (replica reads)
  bool long_timeout = false;  // read timeout raised for a WAIT
  ~Conn() {
    if (ctx) redisFree(ctx);
  }
};

struct Cluster::Node {
  Endpoint ep;
  std::mutex mu;
  std::vector<std::unique_ptr<Conn>> idle;
  Clock::time_point down_until{};
  std::string down_why;
  bool down() {
    std::lock_guard lock(mu);
    return Clock::now() < down_until;
  }
};

namespace {

std::unique_ptr<Cluster::Conn> connect_to(const Endpoint& ep, const ClusterOptions& o, std::string& why) {
  redisContext* c = redisConnectWithTimeout(ep.host.c_str(), ep.port, to_timeval(o.connect_timeout_s));
  if (!c) {
    why = "cannot allocate a connection";
    return nullptr;
  }
  if (c->err) {
    why = c->errstr;
    redisFree(c);
    return nullptr;
  }
  redisSetTimeout(c, to_timeval(o.io_timeout_s));
  redisEnableKeepAlive(c);
  auto conn = std::make_unique<Cluster::Conn>();
  conn->ctx = c;
  return conn;
}

void append(redisContext* c, const Command& argv) {
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  ptrs.reserve(argv.size());
  lens.reserve(argv.size());
  for (const auto& a : argv) ptrs.push_back(a.data()), lens.push_back(a.size());
  redisAppendCommandArgv(c, int(argv.size()), ptrs.data(), lens.data());
}

}  // namespace

Cluster::Cluster(ClusterOptions opt) : opt_(std::move(opt)) {
  if (opt_.seeds.empty()) throw kvstream::Error(kvstream::ErrorCode::kInvalidArgument, "Redis Cluster: no seed address");
  std::string why;
  for (const auto& s : opt_.seeds) {
    std::string w;
    if (refresh_from(s, w)) return;
    why += (why.empty() ? "" : "; ") + s.str() + ": " + w;
  }
  throw kvstream::Error(kvstream::ErrorCode::kUnavailable,
                        "Redis Cluster at " + seeds_str() + " cannot be reached: " + why);
}

Cluster::~Cluster() = default;

std::string Cluster::seeds_str() const {
  std::string s;
  for (const auto& e : opt_.seeds) s += (s.empty() ? "" : ",") + e.str();
  return s;
}

Cluster::Node& Cluster::node(const Endpoint& ep) {
  std::lock_guard lock(nodes_mu_);
  auto& n = nodes_[ep];
  if (!n) {
    n = std::make_unique<Node>();
    n->ep = ep;
  }
  return *n;
}

std::shared_ptr<const Cluster::Topology> Cluster::topology() const {
  std::lock_guard lock(topo_mu_);
  return topo_;
}

std::vector<SlotRange> Cluster::slot_ranges() const {
  auto t = topology();
  return t ? t->ranges : std::vector<SlotRange>{};
}

Endpoint Cluster::master_of(uint16_t slot) const {
  auto t = topology();
  if (!t || slot >= kSlots || t->range_of[slot] < 0) return {};
  return t->ranges[size_t(t->range_of[slot])].nodes.front();
}

ClusterStats Cluster::stats() const {
  ClusterStats s;
  s.commands = n_.commands, s.batches = n_.batches, s.moved = n_.moved, s.ask = n_.ask, s.retries = n_.retries;
  s.connects = n_.connects, s.refreshes = n_.refreshes, s.replica_reads = n_.replica_reads;
  s.io_errors = n_.io_errors, s.unavailable = n_.unavailable, s.not_acknowledged = n_.not_acknowledged;
  return s;
}

// CLUSTER SLOTS from one node: [[first, last, [host, port, id, ...], [replica]...], ...].
bool Cluster::refresh_from(const Endpoint& ep, std::string& why) {
  auto conn = connect_to(ep, opt_, why);
  if (!conn) return false;
  ++n_.connects;
  auto* raw = static_cast<redisReply*>(redisCommand(conn->ctx, "CLUSTER SLOTS"));
  if (!raw) {
    why = conn->ctx->errstr;
    return false;
  }
  const Reply r = convert(raw);
  freeReplyObject(raw);
  if (r.type == Reply::Type::kError) {
    why = r.str;
    return false;
  }
  auto topo = std::make_shared<Topology>();
  for (const auto& e : r.elements) {
    if (e.type != Reply::Type::kArray || e.elements.size() < 3) continue;
    const long long first = e.elements[0].integer, last = e.elements[1].integer;
    if (first < 0 || last < first || last >= kSlots) continue;
    SlotRange range{uint16_t(first), uint16_t(last), {}};
    for (size_t k = 2; k < e.elements.size(); ++k) {
      const auto& n = e.elements[k];
      if (n.type != Reply::Type::kArray || n.elements.size() < 2) continue;
      std::string host = n.elements[0].str;
      if (host.empty()) host = ep.host;  // "the node you asked"
      if (host == "?" || n.elements[1].integer <= 0 || n.elements[1].integer > 65535) continue;
      range.nodes.push_back(Endpoint{host, uint16_t(n.elements[1].integer)});
    }
    if (!range.nodes.empty()) topo->ranges.push_back(std::move(range));
  }
  if (topo->ranges.empty()) {
    why = "no hash slot is assigned (is it a Redis Cluster?)";
    return false;
  }
  std::sort(topo->ranges.begin(), topo->ranges.end(), [](const SlotRange& a, const SlotRange& b) { return a.first < b.first; });
  topo->range_of.fill(-1);
  for (size_t i = 0; i < topo->ranges.size(); ++i)
    for (uint32_t s = topo->ranges[i].first; s <= topo->ranges[i].last; ++s) topo->range_of[s] = int16_t(i);
  {
    std::lock_guard lock(topo_mu_);
    topo_ = std::move(topo);
    last_refresh_ = Clock::now();
  }
  ++n_.refreshes;
  return true;
}

bool Cluster::maybe_refresh(bool force) {
  std::unique_lock lock(refresh_mu_, std::try_to_lock);
  if (!lock.owns_lock()) return false;  // another thread is refreshing right now
  {
    std::lock_guard t(topo_mu_);
    if (!force && Clock::now() - last_refresh_ < seconds(opt_.refresh_interval_s)) return false;
  }
  // Ask the nodes we know (masters first, then replicas), then the seeds; skip nodes known down.
  std::vector<Endpoint> order;
  if (auto t = topology()) {
    for (const auto& r : t->ranges) order.push_back(r.nodes.front());
    for (const auto& r : t->ranges)
      for (size_t k = 1; k < r.nodes.size(); ++k) order.push_back(r.nodes[k]);
  }
  order.insert(order.end(), opt_.seeds.begin(), opt_.seeds.end());
  std::vector<Endpoint> tried;
  for (const auto& ep : order) {
    if (std::find(tried.begin(), tried.end(), ep) != tried.end()) continue;
    tried.push_back(ep);
    if (node(ep).down()) continue;
    std::string why;
    if (refresh_from(ep, why)) return true;
  }
  std::lock_guard t(topo_mu_);
  last_refresh_ = Clock::now();  // nobody answered: do not hammer the nodes
  return false;
}

bool Cluster::refresh() { return maybe_refresh(true); }

std::vector<Reply> Cluster::run(std::span<const Request> batch, const RunOptions& ro) {
  const auto deadline = Clock::now() + seconds(ro.budget_s >= 0 ? ro.budget_s : opt_.budget_s);
  ++n_.batches;
  n_.commands += batch.size();
  std::vector<Reply> out(batch.size());
  struct State {
    bool done = false;
    bool asking = false;
    std::optional<Endpoint> target;  // set by a redirect
    int redirects = 0;
    std::string last_error;
    uint16_t slot = 0;
  };
  std::vector<State> st(batch.size());
  size_t left = batch.size();
  for (size_t i = 0; i < batch.size(); ++i) {
    if (batch[i].key_arg >= batch[i].argv.size())
      throw kvstream::Error(kvstream::ErrorCode::kInvalidArgument, "Redis command without its key argument");
    st[i].slot = key_slot(batch[i].argv[batch[i].key_arg]);
  }
  auto finish = [&](size_t i, Reply r) {
    out[i] = std::move(r);
    st[i].done = true;
    --left;
  };
  double backoff_s = 0.005;
  while (left > 0) {
    const auto topo = topology();
    struct Group {
      Endpoint ep;
      bool replica = false;
      std::vector<size_t> items;
    };
    std::map<std::pair<Endpoint, bool>, Group> groups;
    bool unserved = false;
    for (size_t i = 0; i < batch.size(); ++i) {
      if (st[i].done) continue;
      Endpoint ep;
      bool replica = false;
      if (st[i].target) {
        ep = *st[i].target;
      } else {
        const int ri = topo->range_of[st[i].slot];
        if (ri < 0) {
          st[i].last_error = "slot " + std::to_string(st[i].slot) + " is not served by any node";
          unserved = true;
          if (ro.fail_fast) finish(i, unavailable(st[i].last_error));
          continue;
        }
        const SlotRange& range = topo->ranges[size_t(ri)];
        ep = range.nodes.front();
        if (batch[i].read && opt_.replica_reads && range.nodes.size() > 1 && node(ep).down()) {
          for (size_t k = 1; k < range.nodes.size(); ++k)
            if (!node(range.nodes[k]).down()) {
              ep = range.nodes[k];
              replica = true;
              break;
            }
        }
      }
      if (ro.fail_fast && !replica && node(ep).down()) {
        std::lock_guard lock(node(ep).mu);
        finish(i, unavailable(ep.str() + " is down: " + node(ep).down_why));
        continue;
      }
      auto& g = groups[{ep, replica}];
      g.ep = ep;
      g.replica = replica;
      g.items.push_back(i);
    }
    bool need_refresh = unserved, need_backoff = groups.empty();
    struct Live {
      Group* g;
      Node* node;
      std::unique_ptr<Conn> conn;
      std::vector<long> expect;  // per reply: a command index, kAck (ASKING/READONLY) or kWait
    };
    constexpr long kAck = -1, kWait = -2;
    std::vector<Live> live;
    // Phase 1: write every node's pipeline.
    for (auto& [k, g] : groups) {
      Node& nd = node(g.ep);
      std::string why;
      std::unique_ptr<Conn> conn;
      {
        std::lock_guard lock(nd.mu);
        if (Clock::now() < nd.down_until) {
          why = nd.down_why;
        } else if (!nd.idle.empty()) {
          conn = std::move(nd.idle.back());
          nd.idle.pop_back();
        }
      }
      if (!conn && why.empty()) {
        conn = connect_to(g.ep, opt_, why);
        if (conn) {
          ++n_.connects;
        } else {
          std::lock_guard lock(nd.mu);
          nd.down_until = Clock::now() + seconds(opt_.down_backoff_s);
          nd.down_why = why;
          ++n_.io_errors;
        }
      }
      if (!conn) {
        // (the next round routes reads to a replica, or fails them fast: the node is down now)
        for (size_t i : g.items) st[i].last_error = g.ep.str() + ": " + why, st[i].target.reset();
        need_refresh = need_backoff = true;
        continue;
      }
      Live L{&g, &nd, std::move(conn), {}};
      if (g.replica && !L.conn->readonly) {
        append(L.conn->ctx, {"READONLY"});
        L.expect.push_back(kAck);
        L.conn->readonly = true;
      }
      for (size_t i : g.items) {
        if (st[i].asking) {
          append(L.conn->ctx, {"ASKING"});
          L.expect.push_back(kAck);
        }
        append(L.conn->ctx, batch[i].argv);
        L.expect.push_back(long(i));
        if (g.replica) ++n_.replica_reads;
      }
      if (ro.wait_replicas > 0 && !g.replica) {
        append(L.conn->ctx, {"WAIT", std::to_string(ro.wait_replicas),
                             std::to_string(std::max<long long>(1, std::llround(ro.wait_timeout_s * 1e3)))});
        L.expect.push_back(kWait);
        redisSetTimeout(L.conn->ctx, to_timeval(opt_.io_timeout_s + ro.wait_timeout_s));  // WAIT may take that long
        L.conn->long_timeout = true;
      }
      int done = 0;
      while (!done && redisBufferWrite(L.conn->ctx, &done) == REDIS_OK) {
      }
      live.push_back(std::move(L));
    }
    // Phase 2: read every node's replies, in order.
    for (auto& L : live) {
      bool broken = L.conn->ctx->err != 0;
      std::string why = broken ? L.conn->ctx->errstr : "";
      std::vector<std::pair<size_t, Reply>> held;  // writes waiting for their WAIT
      for (const long e : L.expect) {
        void* raw = nullptr;
        if (!broken && redisGetReply(L.conn->ctx, &raw) != REDIS_OK) {
          broken = true;
          why = L.conn->ctx->errstr;
        }
        if (broken) {
          if (e >= 0) st[size_t(e)].last_error = L.g->ep.str() + ": " + why, st[size_t(e)].target.reset();
          continue;
        }
        Reply r = convert(static_cast<redisReply*>(raw));
        freeReplyObject(raw);
        if (e == kAck) continue;  // a failed ASKING / READONLY shows in the command's own reply
        if (e == kWait) {
          const bool acked = r.type == Reply::Type::kInteger && r.integer >= ro.wait_replicas;
          for (auto& [i, w] : held) {
            if (acked) {
              finish(i, std::move(w));
            } else {
              ++n_.not_acknowledged;
              finish(i, unavailable(L.g->ep.str() + ": write not acknowledged by " + std::to_string(ro.wait_replicas) +
                                    " replica(s) within " + std::to_string(ro.wait_timeout_s) + " s (WAIT: " +
                                    (r.type == Reply::Type::kInteger ? std::to_string(r.integer) : r.str) + ")"));
            }
          }
          held.clear();
          continue;
        }
        const size_t i = size_t(e);
        st[i].asking = false;
        if (r.type == Reply::Type::kError) {
          const bool moved = starts_with(r.str, "MOVED "), ask = starts_with(r.str, "ASK ");
          if (moved || ask) {
            const auto to = redirect_target(r.str);
            if (to && ++st[i].redirects <= opt_.max_redirects) {
              st[i].target = to;
              st[i].asking = ask;
              ++(moved ? n_.moved : n_.ask);
              need_refresh |= moved;
              continue;
            }
            r = unavailable(L.g->ep.str() + ": too many redirects (last: " + r.str + ")");
          } else if (retryable(r.str)) {
            st[i].last_error = L.g->ep.str() + ": " + r.str;
            if (ro.fail_fast && !starts_with(r.str, "TRYAGAIN")) {
              finish(i, unavailable(st[i].last_error));
              continue;
            }
            st[i].target.reset();
            ++n_.retries;
            need_refresh |= !starts_with(r.str, "TRYAGAIN") && !starts_with(r.str, "LOADING");
            need_backoff = true;
            continue;
          }
        }
        if (r.type == Reply::Type::kUnavailable) {
          finish(i, std::move(r));
        } else if (ro.wait_replicas > 0 && !L.g->replica && r.type != Reply::Type::kError) {
          held.emplace_back(i, std::move(r));
        } else {
          finish(i, std::move(r));
        }
      }
      // Writes whose WAIT never came back are not known to be acknowledged: they are sent again.
      for (auto& [i, w] : held) st[i].last_error = L.g->ep.str() + ": connection lost before WAIT", st[i].target.reset();
      if (broken) {
        ++n_.io_errors;
        need_refresh = need_backoff = true;
      } else {
        if (L.conn->long_timeout) redisSetTimeout(L.conn->ctx, to_timeval(opt_.io_timeout_s));
        L.conn->long_timeout = false;
        std::lock_guard lock(L.node->mu);
        if (L.node->idle.size() < opt_.pool_size) L.node->idle.push_back(std::move(L.conn));
      }
    }
    if (left == 0) break;
    if (Clock::now() >= deadline) {
      for (size_t i = 0; i < batch.size(); ++i) {
        if (st[i].done) continue;
        ++n_.unavailable;
        finish(i, unavailable(st[i].last_error.empty() ? "no reply within the retry budget" : st[i].last_error));
      }
      break;
    }
    if (need_refresh) maybe_refresh(false);
    if (need_backoff) {
      std::this_thread::sleep_for(std::min(seconds(backoff_s), deadline - Clock::now()));
      backoff_s = std::min(backoff_s * 2, 0.1);
    }
  }
  return out;
}

Reply Cluster::exec_at(const Endpoint& ep, const Command& argv) {
  std::string why;
  auto conn = connect_to(ep, opt_, why);
  if (conn) {
    ++n_.connects;
    append(conn->ctx, argv);
    void* raw = nullptr;
    if (redisGetReply(conn->ctx, &raw) == REDIS_OK) {
      Reply r = convert(static_cast<redisReply*>(raw));
      freeReplyObject(raw);
      return r;
    }
    why = conn->ctx->errstr;
  }
  throw kvstream::Error(kvstream::ErrorCode::kUnavailable, "Redis node " + ep.str() + ": " + why);
}

Reply Cluster::exec(Command argv, bool read, const RunOptions& ro) {
  Request r{std::move(argv), read, 1};
  auto out = run(std::span<const Request>(&r, 1), ro);
  if (out[0].type == Reply::Type::kUnavailable)
    throw kvstream::Error(kvstream::ErrorCode::kUnavailable, "Redis Cluster at " + seeds_str() + ": " + out[0].str);
  return std::move(out[0]);
}

}  // namespace kvstream::store::redis
