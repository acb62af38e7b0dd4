// Authentication primitives of protocol version 3 (docs/PROTOCOL.md, "Authentication, tenants and
// TLS"): tenant secrets (a keys file), the handshake's HMAC-SHA256 proofs, random nonces, and the
// per-deployment secret that keys the store's prefix keys. Crypto is OpenSSL's libcrypto (HMAC,
// RAND_bytes, CRYPTO_memcmp); nothing here is hand-written crypto.
//
// Contract: a keys file holds one `TENANT SECRET` per line (SECRET: 32..128 hex digits; blank lines
// and `#` comments ignored; a tenant at most once); load() refuses a file readable or writable by
// group or others, and throws kvstream::Error (kInvalidArgument: malformed, naming the file and
// line, never echoing a secret; kIo: unreadable). Proofs bind the tenant and both nonces, with
// distinct labels for the two directions, so neither side's proof can be replayed or reflected.
#pragma once
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "streamer/wire.h"

namespace kvstream::streamer {

using Secret = std::vector<uint8_t>;

// n fresh random bytes (OpenSSL RAND_bytes); throws kvstream::Error(kInternal) if it fails.
void random_bytes(uint8_t* out, size_t n);
Nonce random_nonce();
Mac hmac_sha256(std::span<const uint8_t> key, std::span<const uint8_t> message);
// Constant-time comparison (CRYPTO_memcmp).
bool macs_equal(const Mac& a, const Mac& b);

// Lower-case hex of bytes, and its inverse (throws kvstream::Error(kInvalidArgument)).
std::string to_hex(std::span<const uint8_t> bytes);
Secret from_hex(const std::string& hex);

class Keyring {
 public:
  static Keyring load(const std::string& path);
  // `what` names the source in errors (a path).
  static Keyring parse(const std::string& text, const std::string& what);
  // Throws kInvalidArgument for an invalid tenant name, a secret under 16 bytes, or a duplicate.
  void add(const std::string& tenant, Secret secret);
  const Secret* find(const std::string& tenant) const;  // nullptr when absent
  size_t size() const { return keys_.size(); }
  std::vector<std::string> tenants() const;

 private:
  std::map<std::string, Secret> keys_;
};

// Tenant's secret from a keys file (Keyring::load's errors; kInvalidArgument when the file lacks
// the tenant).
Secret tenant_key(const std::string& keys_path, const std::string& tenant);

// Appends `tenant` with a fresh 32-byte secret to a keys file (created with mode 0600); throws
// kInvalidArgument if the tenant is already there or the name is invalid.
void add_tenant(const std::string& keys_path, const std::string& tenant);

// A secret file: one line of 32..128 hex digits, mode 0600 (the deployment secret of the store's
// keys). write_new_secret creates one (refusing to overwrite).
Secret load_secret_file(const std::string& path);
void write_new_secret(const std::string& path);

// The handshake's proofs (AUTH and AUTH_OK): HMAC-SHA256(secret, label || transcript), transcript =
// "kvstream-v3" || u8 len(tenant) || tenant || client nonce || server nonce.
Mac client_proof(const Secret& secret, const std::string& tenant, const Nonce& client, const Nonce& server);
Mac server_proof(const Secret& secret, const std::string& tenant, const Nonce& client, const Nonce& server);

}  // namespace kvstream::streamer
