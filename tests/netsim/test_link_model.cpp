// LinkModel: Mahimahi opportunity semantics (no banking), queue limits, delay, shared FIFO,
// driven by a ManualClock (fake time).
#include <catch2/catch.hpp>

#include "netsim/link_model.h"

using namespace kvstream::netsim;

static constexpr TimeNs ms(double v) { return static_cast<TimeNs>(v * 1e6); }

TEST_CASE("link: backlogged bytes leave at the trace's opportunities, plus delay", "[netsim][link]") {
  LinkModel link(Trace::parse("1\n"), LinkConfig{ms(20), 0, QueuePolicy::kBackpressure});  // 1500 B per ms
  const auto r = link.enqueue(0, 15000);
  CHECK(r.accepted == 15000);
  CHECK(r.last_departure == ms(10));
  CHECK(r.last_arrival == ms(30));
  CHECK(link.queued_bytes(ms(5)) == 7500);
  std::vector<Departure> out;
  link.advance(ms(5), out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].bytes == 7500);
  CHECK(out[0].departure == ms(5));
  CHECK(out[0].arrival == ms(25));
  CHECK(link.next_departure() == ms(6));
  out.clear();
  link.advance(ms(100), out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].bytes == 7500);
  CHECK(out[0].departure == ms(10));
  CHECK_FALSE(link.next_departure().has_value());
}

TEST_CASE("link: unused capacity is lost, never banked", "[netsim][link]") {
  LinkModel link(Trace::parse("1\n"), LinkConfig{});
  // 1000 B use part of the 1 ms opportunity; its rest serves bytes that arrive by 1 ms.
  CHECK(link.enqueue(0, 1000).last_departure == ms(1));
  CHECK(link.enqueue(ms(1), 1000).last_departure == ms(2));  // 500 at 1 ms, 500 at 2 ms
  // idle from 2 ms to 100 ms: those 98 opportunities are gone
  CHECK(link.enqueue(ms(100) + 1, 15000).last_departure == ms(110));
  CHECK(link.departure_if_enqueued(ms(200), 1500) == ms(200));
  CHECK(link.departure_if_enqueued(ms(200) + 1, 1500) == ms(201));
}

TEST_CASE("link: back-pressured queue limit", "[netsim][link]") {
  LinkModel link(Trace::parse("1\n"), LinkConfig{0, 3000, QueuePolicy::kBackpressure});
  auto r = link.enqueue(0, 5000);
  CHECK(r.accepted == 3000);
  CHECK(r.dropped == 0);
  CHECK(link.free_bytes(0) == 0);
  CHECK(link.enqueue(0, 100).accepted == 0);
  CHECK(link.free_bytes(ms(1)) == 1500);
  CHECK(link.enqueue(ms(1), 5000).accepted == 1500);
  CHECK(link.queued_bytes(ms(1)) == 3000);
  CHECK(link.total_accepted() == 4500);
  CHECK(link.total_dropped() == 0);
}

TEST_CASE("link: drop-tail queue counts what it refuses", "[netsim][link]") {
  LinkModel link(Trace::parse("1\n"), LinkConfig{0, 4500, QueuePolicy::kDropTail});
  auto r = link.enqueue(0, 6000);
  CHECK(r.accepted == 4500);
  CHECK(r.dropped == 1500);
  CHECK(link.enqueue(ms(2), 3000).accepted == 3000);  // 2 ms drained 3000
  CHECK(link.total_dropped() == 1500);
}

TEST_CASE("link: flows share one FIFO", "[netsim][link]") {
  LinkModel link(Trace::load("const:12mbit"), LinkConfig{ms(1), 0, QueuePolicy::kBackpressure});
  link.enqueue(0, 3000, 1);
  link.enqueue(0, 3000, 2);
  link.enqueue(0, 1500, 1);
  std::vector<Departure> out;
  link.advance(ms(5), out);
  REQUIRE(out.size() == 3);
  CHECK(out[0].flow == 1);
  CHECK(out[0].departure == ms(2));
  CHECK(out[1].flow == 2);
  CHECK(out[1].departure == ms(4));
  CHECK(out[1].arrival == ms(5));
  CHECK(out[2].flow == 1);
  CHECK(out[2].bytes == 1500);
  CHECK(out[2].departure == ms(5));
}

TEST_CASE("link: time must not go backwards", "[netsim][link]") {
  LinkModel link(Trace::parse("1\n"), LinkConfig{});
  link.enqueue(ms(5), 10);
  CHECK_THROWS_AS(link.enqueue(ms(4), 10), std::invalid_argument);
  std::vector<Departure> out;
  CHECK_THROWS_AS(link.advance(ms(1), out), std::invalid_argument);
  CHECK_THROWS_AS(LinkModel(Trace(), LinkConfig{}), TraceError);
}

TEST_CASE("link: driven by a ManualClock, conserves bytes over a real trace", "[netsim][link]") {
  ManualClock clock;
  const Trace t = Trace::parse("0\n0\n3\n7\n7\n7\n9\n");
  LinkModel link(t, LinkConfig{ms(3), 8000, QueuePolicy::kBackpressure});
  std::uint64_t in = 0, out_bytes = 0;
  std::vector<Departure> out;
  TimeNs last_dep = 0;
  for (int step = 0; step < 2000; ++step) {
    clock.advance(ms(0.37));
    const TimeNs now = clock.now();
    if (step < 1500) in += link.enqueue(now, 1234 + step % 700, step % 3).accepted;
    out.clear();
    link.advance(now, out);
    for (const auto& d : out) {
      CHECK(d.departure <= now);
      CHECK(d.departure >= last_dep);
      CHECK(d.arrival == d.departure + ms(3));
      last_dep = d.departure;
      out_bytes += d.bytes;
    }
    CHECK(link.queued_bytes(now) <= 8000);
  }
  CHECK(out_bytes == in);
  // while backlogged the link carried exactly the trace's capacity
  CHECK(in > 100000);
}
