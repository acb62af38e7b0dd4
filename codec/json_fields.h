// json_fields.h (internal): bounded reads of the JSON header fields of the codec's files.
//
// Contract: each function returns the field's value only when it has the stated JSON type and
// range, and otherwise throws E(what + ": bad <key> ..."), before any narrowing conversion (a JSON
// float such as 1e300 read as an int or a float would be undefined behaviour). A missing key
// throws nlohmann's out_of_range (callers turn nlohmann exceptions into E) unless a default is
// given.
#pragma once
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace kvstream::codec {

// A non-negative JSON integer in [lo, hi]; `dflt` (if set) when the key is absent.
template <class E>
uint64_t json_uint(const nlohmann::json& j, const char* key, uint64_t lo, uint64_t hi, const std::string& what,
                   std::optional<uint64_t> dflt = std::nullopt) {
  if (dflt && !j.contains(key)) return *dflt;
  const auto& v = j.at(key);
  if (!v.is_number_unsigned() || v.get<uint64_t>() < lo || v.get<uint64_t>() > hi)
    throw E(what + ": bad " + key + " (must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi) + ")");
  return v.get<uint64_t>();
}

// A JSON integer in [lo, hi] (negative allowed); `dflt` when the key is absent.
template <class E>
int64_t json_int(const nlohmann::json& j, const char* key, int64_t lo, int64_t hi, const std::string& what,
                 int64_t dflt) {
  if (!j.contains(key)) return dflt;
  const auto& v = j.at(key);
  const bool is_int = v.is_number_integer() && (!v.is_number_unsigned() || v.get<uint64_t>() <= uint64_t(INT64_MAX));
  const int64_t x = is_int ? v.get<int64_t>() : 0;
  if (!is_int || x < lo || x > hi)
    throw E(what + ": bad " + key + " (must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi) + ")");
  return x;
}

// A finite JSON number with |x| <= max_abs (so that it also fits a float when max_abs does);
// `dflt` when the key is absent.
template <class E>
double json_number(const nlohmann::json& j, const char* key, double max_abs, const std::string& what,
                   std::optional<double> dflt = std::nullopt) {
  if (dflt && !j.contains(key)) return *dflt;
  const auto& v = j.at(key);
  if (!v.is_number() || !std::isfinite(v.get<double>()) || std::abs(v.get<double>()) > max_abs)
    throw E(what + ": bad " + key + " (must be a finite number of magnitude <= " + std::to_string(max_abs) + ")");
  return v.get<double>();
}

}  // namespace kvstream::codec
