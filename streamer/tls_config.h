// TLS settings of the sender and the receiver (files only; streamer/transport.h builds the OpenSSL
// contexts from them). Empty cert/ca files mean: no TLS.
#pragma once
#include <string>

namespace kvstream::streamer {

struct TlsServerConfig {
  std::string cert_file;       // PEM certificate chain
  std::string key_file;        // PEM private key
  std::string client_ca_file;  // when set: require a client certificate signed by this CA
};
struct TlsClientConfig {
  std::string ca_file;      // PEM CA certificate(s) the sender's chain must lead to
  std::string server_name;  // name the sender's certificate must carry (also sent as SNI)
  std::string cert_file;    // optional client certificate (PEM) ...
  std::string key_file;     // ... and its private key
};

}  // namespace kvstream::streamer
