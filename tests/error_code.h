// The ErrorCode of the kvstream::Error that f throws; the test fails when f throws none.
#pragma once
#include <catch2/catch.hpp>

#include <functional>

#include "kvstream/error.h"

namespace kvstream::testing {

inline ErrorCode code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  FAIL("no kvstream::Error was thrown");
  return ErrorCode::kInternal;
}

}  // namespace kvstream::testing
