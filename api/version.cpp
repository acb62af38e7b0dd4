// The linked library's version (see include/kvstream/kvstream.h).
#include "kvstream/kvstream.h"

namespace kvstream {
const char* version() { return KVSTREAM_VERSION; }
}  // namespace kvstream
