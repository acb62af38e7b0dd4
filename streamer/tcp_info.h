// The sender's view of its TCP connection (Linux TCP_INFO) as a wire LinkReport (controller,
// issue 14). Kept apart from the Asio code: <linux/tcp.h> and <netinet/tcp.h> do not mix.
//
// Contract: never throws; returns a report with valid = false when the socket's TCP state cannot
// be read (not a TCP socket, not Linux). Values are saturated to the report's 32-bit fields.
#pragma once
#include "streamer/wire.h"

namespace kvstream::streamer {

LinkReport read_link_report(int fd);

}  // namespace kvstream::streamer
