// Exception classification at the API boundary (see errors.h).
#include "api/errors.h"

#include <filesystem>
#include <new>
#include <stdexcept>
#include <system_error>

namespace kvstream::api {

kvstream::Error to_error(const std::exception& e) {
  if (const auto* k = dynamic_cast<const kvstream::Error*>(&e)) return *k;
  if (const auto* f = dynamic_cast<const std::filesystem::filesystem_error*>(&e)) {
    const bool missing = f->code() == std::errc::no_such_file_or_directory;
    return kvstream::Error(missing ? ErrorCode::kNotFound : ErrorCode::kIo, e.what());
  }
  if (dynamic_cast<const std::invalid_argument*>(&e) || dynamic_cast<const std::out_of_range*>(&e) ||
      dynamic_cast<const std::length_error*>(&e) || dynamic_cast<const std::domain_error*>(&e))
    return kvstream::Error(ErrorCode::kInvalidArgument, e.what());
  if (dynamic_cast<const std::bad_alloc*>(&e)) return kvstream::Error(ErrorCode::kResourceExhausted, "out of memory");
  return kvstream::Error(ErrorCode::kInternal, e.what());
}

kvstream::Error current_error() {
  try {
    throw;
  } catch (const std::exception& e) {
    return to_error(e);
  } catch (...) {
    return kvstream::Error(ErrorCode::kInternal, "unknown exception");
  }
}

}  // namespace kvstream::api
