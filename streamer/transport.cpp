// Plain and TLS transports (see transport.h).
#include "streamer/transport.h"

#include <openssl/ssl.h>

#include "kvstream/error.h"

namespace kvstream::streamer {

using asio::ip::tcp;

namespace {

void use_file(const std::string& what, const std::string& path, const std::function<void()>& f) {
  try {
    f();
  } catch (const std::system_error& e) {
    throw kvstream::Error(kvstream::ErrorCode::kInvalidArgument, "TLS: cannot use " + what + " " + path + ": " + e.what());
  }
}

std::shared_ptr<asio::ssl::context> base_context(asio::ssl::context::method m) {
  auto ctx = std::make_shared<asio::ssl::context>(m);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_compression);
  return ctx;
}

class PlainTransport final : public Transport {
 public:
  explicit PlainTransport(tcp::socket s) : s_(std::move(s)) {}
  tcp::socket& socket() override { return s_; }
  bool tls() const override { return false; }
  void async_handshake(Handler h) override {
    asio::post(s_.get_executor(), [h = std::move(h)] { h(asio::error_code()); });
  }
  void async_read_some(asio::mutable_buffer b, IoHandler h) override { s_.async_read_some(b, std::move(h)); }
  void async_write_some(const Buffers& b, IoHandler h) override { s_.async_write_some(b, std::move(h)); }

 private:
  tcp::socket s_;
};

class TlsTransport final : public Transport {
 public:
  TlsTransport(tcp::socket s, std::shared_ptr<asio::ssl::context> ctx, bool server, const std::string& name)
      : ctx_(std::move(ctx)), s_(std::move(s), *ctx_), server_(server) {
    if (!server && !name.empty()) {
      SSL_set_tlsext_host_name(s_.native_handle(), name.c_str());
      s_.set_verify_callback(asio::ssl::host_name_verification(name));
    }
  }
  tcp::socket& socket() override { return s_.next_layer(); }
  bool tls() const override { return true; }
  void async_handshake(Handler h) override {
    s_.async_handshake(server_ ? asio::ssl::stream_base::server : asio::ssl::stream_base::client, std::move(h));
  }
  void async_read_some(asio::mutable_buffer b, IoHandler h) override { s_.async_read_some(b, std::move(h)); }
  void async_write_some(const Buffers& b, IoHandler h) override {
    s_.async_write_some(b[0].size() ? b[0] : b[1], std::move(h));
  }

 private:
  std::shared_ptr<asio::ssl::context> ctx_;
  asio::ssl::stream<tcp::socket> s_;
  bool server_;
};

struct WriteAll {
  Transport& t;
  Transport::Buffers b;
  std::function<void(size_t)> progress;
  Transport::Handler done;
};

void write_step(const std::shared_ptr<WriteAll>& w) {
  if (w->b[0].size() == 0 && w->b[1].size() == 0) return w->done(asio::error_code());
  w->t.async_write_some(w->b, [w](const asio::error_code& ec, size_t n) {
    if (ec) return w->done(ec);
    const size_t first = std::min(n, w->b[0].size());
    w->b[0] += first;
    w->b[1] += n - first;
    if (w->progress) w->progress(n);
    write_step(w);
  });
}

}  // namespace

void Transport::close() {
  asio::error_code ec;
  socket().shutdown(tcp::socket::shutdown_both, ec);
  socket().close(ec);
}

std::shared_ptr<asio::ssl::context> make_server_tls(const TlsServerConfig& c) {
  auto ctx = base_context(asio::ssl::context::tls_server);
  use_file("certificate", c.cert_file, [&] { ctx->use_certificate_chain_file(c.cert_file); });
  use_file("private key", c.key_file, [&] { ctx->use_private_key_file(c.key_file, asio::ssl::context::pem); });
  if (!c.client_ca_file.empty()) {
    use_file("client CA", c.client_ca_file, [&] { ctx->load_verify_file(c.client_ca_file); });
    ctx->set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
  }
  return ctx;
}

std::shared_ptr<asio::ssl::context> make_client_tls(const TlsClientConfig& c) {
  auto ctx = base_context(asio::ssl::context::tls_client);
  use_file("CA", c.ca_file, [&] { ctx->load_verify_file(c.ca_file); });
  ctx->set_verify_mode(asio::ssl::verify_peer);
  if (!c.cert_file.empty() || !c.key_file.empty()) {
    use_file("certificate", c.cert_file, [&] { ctx->use_certificate_chain_file(c.cert_file); });
    use_file("private key", c.key_file, [&] { ctx->use_private_key_file(c.key_file, asio::ssl::context::pem); });
  }
  return ctx;
}

std::unique_ptr<Transport> make_plain_transport(tcp::socket s) { return std::make_unique<PlainTransport>(std::move(s)); }

std::unique_ptr<Transport> make_tls_transport(tcp::socket s, std::shared_ptr<asio::ssl::context> ctx, bool server,
                                              const std::string& server_name) {
  return std::make_unique<TlsTransport>(std::move(s), std::move(ctx), server, server_name);
}

void async_write_all(Transport& t, Transport::Buffers b, std::function<void(size_t)> progress, Transport::Handler done) {
  write_step(std::make_shared<WriteAll>(WriteAll{t, b, std::move(progress), std::move(done)}));
}

}  // namespace kvstream::streamer
