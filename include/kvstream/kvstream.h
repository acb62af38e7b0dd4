// kvstream/kvstream.h — the kvstream library's public API, all of it (C++17; include this one).
//
//   version.h   KVSTREAM_VERSION ("MAJOR.MINOR.PATCH"), kvstream::version()
//   error.h     kvstream::Error + ErrorCode: every exception the library throws
//   types.h     KvShape, Dtype
//   layout.h    KvLayout: contiguous or paged K/V tensors in the caller's memory
//   lookup.h    Lookup: the longest stored prefix of a token sequence (side-effect free)
//   transfer.h  Transfer / fetch(): a context from a sender into a KvLayout, non-blocking
//   server.h    Server: a sender in the caller's process (directory and store sources)
//   store.h     Profile, put(): encode a KvLayout and store it (the save-back path)
//
// Everything else in the kvstream source tree is internal and may change between versions.
#pragma once
#include "kvstream/error.h"
#include "kvstream/layout.h"
#include "kvstream/lookup.h"
#include "kvstream/server.h"
#include "kvstream/store.h"
#include "kvstream/transfer.h"
#include "kvstream/types.h"
#include "kvstream/version.h"

namespace kvstream {
// The version of the library linked in (KVSTREAM_VERSION is the headers' version).
const char* version();
}  // namespace kvstream
