// api/errors.h — turning any exception that leaves the internals into a kvstream::Error with the
// right code, at the public API's boundary (every public call runs its body through guarded()) and
// for the CLI's exit codes.
//
// Contract: a kvstream::Error (CorruptBlob, ProtocolError, TraceError, CorruptRecord, IoError, ...)
// keeps its code and message; std::invalid_argument, std::out_of_range, std::length_error and
// std::domain_error are kInvalidArgument; std::bad_alloc is kResourceExhausted; a
// std::filesystem::filesystem_error is kNotFound when the path does not exist and kIo otherwise;
// any other exception is kInternal (its message kept).
#pragma once
#include <exception>
#include <utility>

#include "kvstream/error.h"

namespace kvstream::api {

kvstream::Error to_error(const std::exception& e);
// The Error for the exception being handled (call inside a catch block).
kvstream::Error current_error();

// Runs f(); rethrows anything it throws as a kvstream::Error (see contract).
template <typename F>
auto guarded(F&& f) -> decltype(f()) {
  try {
    return std::forward<F>(f)();
  } catch (const kvstream::Error&) {
    throw;
  } catch (...) {
    throw current_error();
  }
}

}  // namespace kvstream::api
