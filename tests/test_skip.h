// Reporting a test case that cannot run here as skipped (Catch2 v2 has no SKIP): print why and exit
// with the code CTest maps to "Skipped" (KVSTREAM_TEST_SKIP_CODE, set with SKIP_RETURN_CODE in
// tests/CMakeLists.txt; 77 when run by hand). Each ctest case runs in its own process.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <string>

namespace kvstream::testing {

[[noreturn]] inline void skip_test(const std::string& why) {
  std::printf("skipped: %s\n", why.c_str());
  std::fflush(stdout);
  const char* code = std::getenv("KVSTREAM_TEST_SKIP_CODE");
  std::_Exit(code && *code ? std::atoi(code) : 77);
}

}  // namespace kvstream::testing
