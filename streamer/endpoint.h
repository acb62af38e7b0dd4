// HOST:PORT parsing for the send/recv commands ("[::1]:9000" allowed). Throws
// std::invalid_argument with the option name on anything else.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

namespace kvstream::streamer {

inline std::pair<std::string, uint16_t> parse_host_port(const std::string& s, const std::string& what) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size())
    throw std::invalid_argument(what + ": expected HOST:PORT, got '" + s + "'");
  long port = -1;
  try {
    size_t used = 0;
    port = std::stol(s.substr(colon + 1), &used);
    if (used != s.size() - colon - 1) port = -1;
  } catch (const std::exception&) {
  }
  if (port < 0 || port > 65535) throw std::invalid_argument(what + ": bad port in '" + s + "'");
  std::string host = s.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return {host, uint16_t(port)};
}

}  // namespace kvstream::streamer
