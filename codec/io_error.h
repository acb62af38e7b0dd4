// io_error.h: the kvstream::Error for a file that cannot be opened, read or written, from errno at
// the call: kNotFound when the file does not exist, kIo otherwise. The message names the file.
#pragma once
#include <cerrno>
#include <cstring>
#include <string>

#include "kvstream/error.h"

namespace kvstream {

inline kvstream::Error file_error(const std::string& message) {
  const int err = errno;
  return kvstream::Error(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                         err ? message + ": " + std::strerror(err) : message);
}

}  // namespace kvstream
