// Tenant keys, HMAC proofs and random nonces on OpenSSL libcrypto (see auth.h).
#include "streamer/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace kvstream::streamer {

namespace {

using kvstream::Error;
using kvstream::ErrorCode;

constexpr size_t kMinSecretBytes = 16, kMaxSecretBytes = 64;

std::string read_private_file(const std::string& path, const char* what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw Error(ErrorCode::kIo, std::string("cannot read ") + what + " " + path);
  if (st.st_mode & 077)
    throw Error(ErrorCode::kInvalidArgument, std::string(what) + " " + path +
                                                 " is accessible by group or others (chmod 600 it)");
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  if (!f.good() && !f.eof()) throw Error(ErrorCode::kIo, std::string("cannot read ") + what + " " + path);
  return ss.str();
}

Secret checked_secret(const std::string& hex, const std::string& where) {
  Secret s;
  try {
    s = from_hex(hex);
  } catch (const Error&) {
    throw Error(ErrorCode::kInvalidArgument, where + ": the secret is not hex digits");
  }
  if (s.size() < kMinSecretBytes || s.size() > kMaxSecretBytes)
    throw Error(ErrorCode::kInvalidArgument, where + ": a secret must be 16..64 bytes (32..128 hex digits)");
  return s;
}

// Creates `path` exclusively with mode 0600 and writes `text`.
void write_private_new(const std::string& path, const std::string& text, bool append) {
  const int flags = O_WRONLY | O_CREAT | (append ? O_APPEND : O_EXCL);
  const int fd = ::open(path.c_str(), flags, 0600);
  if (fd < 0) throw Error(ErrorCode::kIo, "cannot write " + path + ": " + std::strerror(errno));
  const bool ok = ::write(fd, text.data(), text.size()) == ssize_t(text.size());
  const bool closed = ::close(fd) == 0;
  if (!ok || !closed) throw Error(ErrorCode::kIo, "cannot write " + path);
}

Mac proof(const char* label, const Secret& secret, const std::string& tenant, const Nonce& c, const Nonce& s) {
  std::vector<uint8_t> m;
  m.insert(m.end(), label, label + std::strlen(label));
  const char* proto = "kvstream-v3";
  m.insert(m.end(), proto, proto + std::strlen(proto));
  m.push_back(uint8_t(tenant.size()));
  m.insert(m.end(), tenant.begin(), tenant.end());
  m.insert(m.end(), c.begin(), c.end());
  m.insert(m.end(), s.begin(), s.end());
  return hmac_sha256(secret, m);
}

}  // namespace

void random_bytes(uint8_t* out, size_t n) {
  if (RAND_bytes(out, int(n)) != 1) throw Error(ErrorCode::kInternal, "the system random generator failed");
}

Nonce random_nonce() {
  Nonce n;
  random_bytes(n.data(), n.size());
  return n;
}

Mac hmac_sha256(std::span<const uint8_t> key, std::span<const uint8_t> message) {
  Mac out{};
  unsigned int len = 0;
  static const uint8_t kEmpty = 0;  // HMAC() wants a non-null key pointer even for a 0-byte key
  if (!HMAC(EVP_sha256(), key.empty() ? &kEmpty : key.data(), int(key.size()), message.data(), message.size(),
            out.data(), &len) ||
      len != out.size())
    throw Error(ErrorCode::kInternal, "HMAC-SHA256 failed");
  return out;
}

bool macs_equal(const Mac& a, const Mac& b) { return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0; }

std::string to_hex(std::span<const uint8_t> bytes) {
  static const char* d = "0123456789abcdef";
  std::string s;
  s.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    s.push_back(d[b >> 4]);
    s.push_back(d[b & 15]);
  }
  return s;
}

Secret from_hex(const std::string& hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (hex.size() % 2) throw Error(ErrorCode::kInvalidArgument, "odd number of hex digits");
  Secret s(hex.size() / 2);
  for (size_t i = 0; i < s.size(); ++i) {
    const int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) throw Error(ErrorCode::kInvalidArgument, "not a hex digit");
    s[i] = uint8_t(hi << 4 | lo);
  }
  return s;
}

Keyring Keyring::load(const std::string& path) { return parse(read_private_file(path, "keys file"), path); }

Secret tenant_key(const std::string& keys_path, const std::string& tenant) {
  const auto keys = Keyring::load(keys_path);
  const auto* k = keys.find(tenant);
  if (!k) throw kvstream::Error(ErrorCode::kInvalidArgument, keys_path + " has no key for tenant '" + tenant + "'");
  return *k;
}

Keyring Keyring::parse(const std::string& text, const std::string& what) {
  Keyring k;
  std::istringstream in(text);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (const auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream words(line);
    std::string tenant, hex, extra;
    if (!(words >> tenant)) continue;
    const std::string where = what + ":" + std::to_string(n);
    if (!(words >> hex) || (words >> extra))
      throw Error(ErrorCode::kInvalidArgument, where + ": expected 'TENANT SECRET'");
    if (!valid_tenant(tenant)) throw Error(ErrorCode::kInvalidArgument, where + ": invalid tenant name '" + tenant + "'");
    if (k.find(tenant)) throw Error(ErrorCode::kInvalidArgument, where + ": tenant '" + tenant + "' appears twice");
    k.add(tenant, checked_secret(hex, where));
  }
  return k;
}

void Keyring::add(const std::string& tenant, Secret secret) {
  if (!valid_tenant(tenant)) throw Error(ErrorCode::kInvalidArgument, "invalid tenant name '" + tenant + "'");
  if (secret.size() < kMinSecretBytes || secret.size() > kMaxSecretBytes)
    throw Error(ErrorCode::kInvalidArgument, "tenant '" + tenant + "': a secret must be 16..64 bytes");
  if (!keys_.emplace(tenant, std::move(secret)).second)
    throw Error(ErrorCode::kInvalidArgument, "tenant '" + tenant + "' is already known");
}

const Secret* Keyring::find(const std::string& tenant) const {
  const auto it = keys_.find(tenant);
  return it == keys_.end() ? nullptr : &it->second;
}

std::vector<std::string> Keyring::tenants() const {
  std::vector<std::string> t;
  for (const auto& [name, s] : keys_) t.push_back(name);
  return t;
}

void add_tenant(const std::string& keys_path, const std::string& tenant) {
  if (!valid_tenant(tenant)) throw Error(ErrorCode::kInvalidArgument, "invalid tenant name '" + tenant + "'");
  if (::access(keys_path.c_str(), F_OK) == 0 && Keyring::load(keys_path).find(tenant))
    throw Error(ErrorCode::kInvalidArgument, keys_path + " already has tenant '" + tenant + "'");
  Secret s(32);
  random_bytes(s.data(), s.size());
  write_private_new(keys_path, tenant + " " + to_hex(s) + "\n", /*append=*/true);
}

Secret load_secret_file(const std::string& path) {
  std::istringstream in(read_private_file(path, "secret file"));
  std::string hex, extra;
  if (!(in >> hex) || (in >> extra)) throw Error(ErrorCode::kInvalidArgument, path + ": expected one hex secret");
  return checked_secret(hex, path);
}

void write_new_secret(const std::string& path) {
  Secret s(32);
  random_bytes(s.data(), s.size());
  write_private_new(path, to_hex(s) + "\n", /*append=*/false);
}

Mac client_proof(const Secret& secret, const std::string& tenant, const Nonce& client, const Nonce& server) {
  return proof("client", secret, tenant, client, server);
}

Mac server_proof(const Secret& secret, const std::string& tenant, const Nonce& client, const Nonce& server) {
  return proof("server", secret, tenant, client, server);
}

}  // namespace kvstream::streamer
