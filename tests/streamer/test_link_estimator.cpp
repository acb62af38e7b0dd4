// LinkEstimator: what each first-estimate source contributes, and how wide the belief stays while
// little is known (controller, issue 14).
#include <catch2/catch.hpp>

#include <cmath>

#include "streamer/link_estimator.h"
#include "streamer/link_memory.h"
#include "streamer/wire.h"

#include <filesystem>
#include <fstream>

using namespace kvstream::streamer;

TEST_CASE("estimator: the prior alone is a wide belief around prior_mbps", "[controller][estimator]") {
  LinkEstimatorConfig c;
  c.prior_mbps = 8;
  LinkEstimator e(c);
  CHECK(e.centre() == Approx(1e6));
  CHECK(e.sigma() == Approx(c.sigma_prior));
  CHECK(e.quantile(0.1) < e.centre() / 15);
  CHECK(e.quantile(0.9) > e.centre() * 15);
  CHECK(e.sources() == "prior");
  CHECK(normal_quantile(0.5) == Approx(0).margin(1e-9));
  CHECK(normal_quantile(0.975) == Approx(1.959964).epsilon(1e-6));
  CHECK(normal_quantile(0.02) == Approx(-2.053749).epsilon(1e-6));
}

TEST_CASE("estimator: chunk samples move the centre and narrow the spread", "[controller][estimator]") {
  LinkEstimator e;
  e.on_chunk_sample(20000, 0.01);  // 2 MB/s
  const double s1 = e.sigma();
  CHECK(e.centre() == Approx(2e6).epsilon(1e-9));
  for (int i = 0; i < 5; ++i) e.on_chunk_sample(20000, 0.01);
  CHECK(e.centre() == Approx(2e6).epsilon(1e-9));
  CHECK(e.sigma() < s1);
  CHECK(e.quantile(0.1) > 0.6 * 2e6);  // consistent samples: the pessimistic rate is close
  // a small sample counts less than a big one
  LinkEstimator a, b;
  a.on_chunk_sample(1000, 0.001);
  b.on_chunk_sample(30000, 0.03);
  CHECK(a.sigma() > b.sigma());
  // the newest sample weighs most: a drop pulls the centre below the old rate at once
  e.on_chunk_sample(20000, 0.1);  // 200 kB/s
  CHECK(e.centre() < 1.2e6);
  CHECK(e.chunk_samples() == 6);  // the window keeps the last 6
  CHECK(e.sources() == "chunks");
}

TEST_CASE("estimator: a handshake shorter than 1 ms is one burst and says nothing", "[controller][estimator]") {
  LinkEstimator e;
  e.on_handshake(560, 200, 0.010, 0.0105, 0.01);
  CHECK(e.sources() == "prior");
  e.on_handshake(560, 40, 0.010, 0.052, 0.01);  // 520 B in 42 ms: ~0.1 Mbit/s (a slow start)
  CHECK(e.sources() == "handshake");
  CHECK(e.centre() == Approx(520 / 0.042).epsilon(1e-9));
  CHECK(e.sigma() == Approx(LinkEstimatorConfig().sigma_prior));  // 520 bytes: still wide
  LinkEstimatorConfig off;
  off.use_handshake = false;
  LinkEstimator f(off);
  f.on_handshake(560, 40, 0.010, 0.052, 0.01);
  CHECK(f.sources() == "prior");
}

TEST_CASE("estimator: the sender's TCP_INFO counts only when its TCP spans the path", "[controller][estimator]") {
  LinkReport r;
  r.valid = true;
  r.app_limited = false;
  r.delivery_kBps = 5000;  // 5 MB/s
  r.srtt_us = 60;
  r.min_rtt_us = 20;      // a loopback hop to a proxy (the trace relay), app RTT 20 ms
  LinkEstimator e;
  e.on_report(r, 0.02);
  CHECK(e.sources() == "prior");
  CHECK(e.ignored_reports() == 1);
  r.min_rtt_us = 19000;  // the sender sees the path's RTT: its delivery rate is a sample
  e.on_report(r, 0.02);
  CHECK(e.sources() == "report");
  CHECK(e.centre() == Approx(5e6));
  r.app_limited = true;  // an app-limited rate says only what the sender offered
  LinkEstimator g;
  g.on_report(r, 0.02);
  CHECK(g.sources() == "prior");
}

TEST_CASE("estimator: a remembered estimate starts the belief, wider with its age", "[controller][estimator]") {
  LinkMemory m;
  m.valid = true;
  m.mu = std::log(4e6);
  m.sigma = 0.3;
  LinkEstimator fresh, old;
  fresh.set_memory(m);
  m.age_s = 3600;
  old.set_memory(m);
  CHECK(fresh.centre() == Approx(4e6));
  CHECK(fresh.sources() == "memory");
  CHECK(old.sigma() > fresh.sigma());
  CHECK(old.quantile(0.1) < fresh.quantile(0.1));
  // a stall caps every quantile at the rate the chunk in flight achieves
  fresh.cap_current(1000, 0.1);
  CHECK(fresh.quantile(0.9) == Approx(1e4));
  fresh.clear_cap();
  CHECK(fresh.quantile(0.9) > 4e6);
}

TEST_CASE("link memory: round trip, age, bad files ignored", "[controller][estimator]") {
  namespace fs = std::filesystem;
  const fs::path p = fs::temp_directory_path() / ("kvstream-linkmem-" + std::to_string(::getpid()) + ".json");
  fs::remove(p);
  CHECK_FALSE(load_link_memory(p.string(), "h:1", 100).valid);  // no file
  LinkMemory m;
  m.valid = true;
  m.mu = 14.2;
  m.sigma = 0.4;
  store_link_memory(p.string(), "h:1", m, 1000);
  m.mu = 12.0;
  store_link_memory(p.string(), "h:2", m, 1000);
  const LinkMemory a = load_link_memory(p.string(), "h:1", 1060);
  CHECK(a.valid);
  CHECK(a.mu == Approx(14.2));
  CHECK(a.sigma == Approx(0.4));
  CHECK(a.age_s == Approx(60));
  CHECK(load_link_memory(p.string(), "h:2", 1060).mu == Approx(12.0));
  CHECK_FALSE(load_link_memory(p.string(), "h:3", 1060).valid);
  std::ofstream(p) << "{\"links\": {\"h:1\": {\"mu\": 1e300, \"sigma\": 0.4, \"unix_s\": 5}}}";
  CHECK_FALSE(load_link_memory(p.string(), "h:1", 1060).valid);  // out of range
  std::ofstream(p) << "not json";
  CHECK_FALSE(load_link_memory(p.string(), "h:1", 1060).valid);
  fs::remove(p);
}
