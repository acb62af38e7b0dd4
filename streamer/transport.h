// One connection's byte stream under the framing: plain TCP, or TLS through asio's SSL layer on
// OpenSSL (docs/PROTOCOL.md, "Authentication, tenants and TLS"). The sender and the receiver both
// move their frames through a Transport, so TLS is one choice at connect/accept time.
//
// Contract: all calls are made on the thread running the socket's io_context; handlers run there.
// async_handshake completes at once (posted) for plain TCP; for TLS it runs the TLS handshake
// (server or client side). close() closes the TCP socket at once (for TLS without a close_notify:
// the framing's END already says the stream is complete) and makes pending operations complete
// with an error. TLS contexts: TLS 1.2 or later; a client context verifies the peer's chain
// against its CA file and the peer's name (SNI sent); a server context with a client CA requires
// and verifies a client certificate. The make_*_tls functions throw kvstream::Error
// (kInvalidArgument) naming the file that cannot be used.
#pragma once
#include <array>
#include <asio.hpp>
#include <asio/ssl.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "streamer/tls_config.h"

namespace kvstream::streamer {

std::shared_ptr<asio::ssl::context> make_server_tls(const TlsServerConfig& c);
std::shared_ptr<asio::ssl::context> make_client_tls(const TlsClientConfig& c);

class Transport {
 public:
  using Handler = std::function<void(const asio::error_code&)>;
  using IoHandler = std::function<void(const asio::error_code&, size_t)>;
  using Buffers = std::array<asio::const_buffer, 2>;
  virtual ~Transport() = default;
  virtual asio::ip::tcp::socket& socket() = 0;
  virtual bool tls() const = 0;
  virtual void async_handshake(Handler h) = 0;
  virtual void async_read_some(asio::mutable_buffer b, IoHandler h) = 0;
  // Writes some bytes of b[0] then b[1] (TLS: of the first non-empty one).
  virtual void async_write_some(const Buffers& b, IoHandler h) = 0;
  void close();
};

std::unique_ptr<Transport> make_plain_transport(asio::ip::tcp::socket s);
// server: accept side. For a client, server_name is sent as SNI and verified when non-empty.
std::unique_ptr<Transport> make_tls_transport(asio::ip::tcp::socket s, std::shared_ptr<asio::ssl::context> ctx,
                                              bool server, const std::string& server_name = {});

// Writes all of b (buffers kept alive by the caller until done), calling progress(bytes) after
// every partial write and done(error) at the end.
void async_write_all(Transport& t, Transport::Buffers b, std::function<void(size_t)> progress, Transport::Handler done);

}  // namespace kvstream::streamer
