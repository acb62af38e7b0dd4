// `kvstream keygen`: make the secrets of an authenticated deployment (docs/PROTOCOL.md,
// "Authentication, tenants and TLS"): add a tenant with a fresh random key to a keys file, or write
// a new store-key deployment secret. Files are created with mode 600. Logic: streamer/auth.h.
#include <iostream>

#include "cli/command_registry.h"
#include "streamer/auth.h"

KVSTREAM_COMMAND("keygen", "Add a tenant key to a keys file, or write a store-key secret", ([](CLI::App& sub) {
  struct Opts {
    std::string keys, tenant, secret_file;
  };
  auto o = std::make_shared<Opts>();
  sub.add_option("--keys", o->keys, "keys file to append the tenant to (created if missing; default: none)");
  sub.add_option("--tenant", o->tenant, "tenant name ([A-Za-z0-9._-], 1..64 characters; with --keys; default: none)");
  sub.add_option("--secret-file", o->secret_file, "write a new deployment secret here (refuses to overwrite; default: none)");
  return kvstream::cli::Action([o] {
    namespace ks = kvstream::streamer;
    if (o->keys.empty() == o->secret_file.empty()) throw std::invalid_argument("give --keys with --tenant, or --secret-file");
    if (!o->keys.empty()) {
      if (o->tenant.empty()) throw std::invalid_argument("--keys needs --tenant");
      ks::add_tenant(o->keys, o->tenant);
      std::cout << "keygen: added tenant " << o->tenant << " to " << o->keys << std::endl;
    } else {
      ks::write_new_secret(o->secret_file);
      std::cout << "keygen: wrote a new secret to " << o->secret_file << std::endl;
    }
    return 0;
  });
}));
