// api/security.h — the public API's security options turned into the internals' (one place for
// the rules; docs/PROTOCOL.md, "Authentication, tenants and TLS").
//
// Contract: tenant_store() is tenant T's part of a store: directory dir/T and the key secret
// derived from the deployment secret in secret_file (both empty: dir itself, public keys; a
// tenant without a secret file is kInvalidArgument). Files are read with the internals' loaders
// (mode checks included); a tenant's key is streamer::tenant_key().
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kvstream::api {

struct TenantStore {
  std::string dir;
  std::vector<uint8_t> secret;  // the store's key secret (empty: the public key)
};

TenantStore tenant_store(const std::string& dir, const std::string& tenant, const std::string& secret_file);

}  // namespace kvstream::api
