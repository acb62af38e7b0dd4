// The public API's security options (see api/security.h).
#include "api/security.h"

#include "kvstream/error.h"
#include "store/store_source.h"
#include "streamer/auth.h"

namespace kvstream::api {

TenantStore tenant_store(const std::string& dir, const std::string& tenant, const std::string& secret_file) {
  if (!tenant.empty() && secret_file.empty())
    throw Error(ErrorCode::kInvalidArgument, "tenant '" + tenant + "' needs the store's secret file (store_secret_file)");
  const streamer::Secret deployment = secret_file.empty() ? streamer::Secret() : streamer::load_secret_file(secret_file);
  store::StoreConfig sc;
  sc.dir = dir;
  sc = store::tenant_store_config(sc, tenant, deployment);
  return {sc.dir, sc.secret};
}

}  // namespace kvstream::api
