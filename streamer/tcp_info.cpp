// TCP_INFO -> LinkReport (see tcp_info.h).
#include "streamer/tcp_info.h"

#include <algorithm>
#include <cstring>

#if defined(__linux__)
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#endif

namespace kvstream::streamer {

namespace {
uint32_t sat32(uint64_t v) { return uint32_t(std::min<uint64_t>(v, 0xFFFFFFFFu)); }
}  // namespace

LinkReport read_link_report(int fd) {
  LinkReport r;
#if defined(__linux__)
  struct tcp_info ti;
  std::memset(&ti, 0, sizeof ti);
  socklen_t len = sizeof ti;
  if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return r;
  // Fields up to tcpi_delivery_rate exist since Linux 4.9; an older kernel fills less.
  if (len < offsetof(struct tcp_info, tcpi_delivery_rate) + sizeof ti.tcpi_delivery_rate) return r;
  r.valid = true;
  r.app_limited = ti.tcpi_delivery_rate_app_limited;
  r.srtt_us = ti.tcpi_rtt;
  r.min_rtt_us = ti.tcpi_min_rtt;
  r.cwnd_bytes = sat32(uint64_t(ti.tcpi_snd_cwnd) * ti.tcpi_snd_mss);
  r.delivery_kBps = sat32(ti.tcpi_delivery_rate / 1000);
  r.notsent_bytes = ti.tcpi_notsent_bytes;
#else
  (void)fd;
#endif
  return r;
}

}  // namespace kvstream::streamer
