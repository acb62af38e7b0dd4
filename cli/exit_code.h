// exit_code.h: the kvstream command's exit status for each class of error (README, "Exit codes").
//
// Contract: 0 success; 1 an error of no class (a bug, or an exception the library did not type);
// 2 a usage error (bad command line); 10 + ErrorCode for every kvstream::Error (11 invalid_argument,
// 12 not_found, 13 io, 14 corrupt, 15 protocol, 16 version, 17 unknown_context, 18 stalled,
// 19 closed, 20 timeout, 21 auth, 22 resource_exhausted, 23 unavailable, 24 cancelled,
// 25 internal). Exceptions are classified like the public API does (api/errors.h): a plain
// std::invalid_argument is invalid_argument, std::bad_alloc resource_exhausted, and so on; only
// kInternal from an untyped exception maps to 1. Codes are stable, like ErrorCode's numbers.
#pragma once
#include <exception>
#include <string>

#include <CLI/CLI.hpp>

#include "api/errors.h"

namespace kvstream::cli {

inline constexpr int kExitUnclassified = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitErrorBase = 10;

struct ClassifiedError {
  int exit_code = kExitUnclassified;
  std::string label;  // "usage", the code's name, or "error"
};

inline ClassifiedError classify(const std::exception& e) {
  if (dynamic_cast<const CLI::Error*>(&e)) return {kExitUsage, "usage"};
  const bool typed = dynamic_cast<const kvstream::Error*>(&e) != nullptr;
  const kvstream::Error k = api::to_error(e);
  if (!typed && k.code() == ErrorCode::kInternal) return {kExitUnclassified, "error"};
  return {kExitErrorBase + int(k.code()), error_code_name(k.code())};
}

}  // namespace kvstream::cli
