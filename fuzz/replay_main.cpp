// fuzz_replay: runs inputs through the fuzz targets in a plain (gcc, or ASan) build, for ctest.
//
//   fuzz_replay TARGET [--seeds] [PATH...]
//
// Every file under each PATH (a file or a directory, e.g. fuzz/regressions/TARGET: the crashers
// the fuzzers found, kept as regression cases) goes through TARGET; it must return (accepted or
// rejected), never crash. With --seeds the generated seeds and the real files (seeds.h) must all
// be accepted, and for targets with a checksum (mode byte) every single-byte change of a seed in
// mode 0 (sampled positions, no re-seal) must be rejected. Exit status 0 when all of that holds.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>

#include "fuzz/seeds.h"
#include "fuzz/target.h"

namespace fs = std::filesystem;
using namespace kvstream::fuzz;

namespace {

kvstream::fuzz::TargetFn find_target(const std::string& name) {
  for (const auto& e : Registry::all())
    if (name == e.name) return e.fn;
  return nullptr;
}

std::vector<uint8_t> read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

const char* name_of(Outcome o) { return o == Outcome::kAccepted ? "accepted" : "rejected"; }

// Seeds accepted; mode-0 single-byte changes rejected. Returns the number of failures.
int check_seeds(const std::string& target, TargetFn fn, size_t& accepted, size_t& mutations) {
  int failures = 0;
  std::vector<Seed> seeds = make_seeds(target);
  for (Seed& s : real_files(target)) seeds.push_back(std::move(s));
  if (seeds.empty()) {
    std::cerr << target << ": no seeds\n";
    return 1;
  }
  for (const Seed& s : seeds) {
    if (fn(s.bytes) != Outcome::kAccepted) {
      std::cerr << target << ": seed " << s.name << " (" << s.bytes.size() << " bytes) was rejected\n";
      ++failures;
    }
    ++accepted;
    if (!has_mode_byte(target) || s.bytes.empty() || s.bytes[0] != 0) continue;
    const size_t n = s.bytes.size() - 1, step = std::max<size_t>(1, n / 64);
    for (size_t i = 1; i <= n; i += step) {
      std::vector<uint8_t> b = s.bytes;
      b[i] ^= uint8_t(1u << (i % 8));
      ++mutations;
      if (fn(b) != Outcome::kRejected) {
        std::cerr << target << ": seed " << s.name << " with byte " << i - 1
                  << " changed (no re-seal) was accepted\n";
        ++failures;
      }
    }
  }
  return failures;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--list") == 0) {
    for (const auto& e : Registry::all()) std::cout << e.name << "\n";
    return argc < 2 ? 2 : 0;
  }
  const std::string target = argv[1];
  const TargetFn fn = find_target(target);
  if (!fn) {
    std::cerr << "fuzz_replay: no target '" << target << "' (--list shows them)\n";
    return 2;
  }
  bool seeds = false;
  std::vector<fs::path> files;
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--seeds") == 0) {
      seeds = true;
    } else if (fs::is_directory(argv[i])) {
      for (const auto& e : fs::recursive_directory_iterator(argv[i]))
        if (e.is_regular_file() && e.path().filename().string()[0] != '.') files.push_back(e.path());
    } else if (fs::exists(argv[i])) {
      files.push_back(argv[i]);
    }  // a missing path is an empty set of regression inputs
  }
  std::sort(files.begin(), files.end());
  try {
    for (const fs::path& p : files)
      std::cout << target << ": " << p.filename().string() << ": " << name_of(fn(read_file(p))) << "\n";
    int failures = 0;
    size_t accepted = 0, mutations = 0;
    if (seeds) failures = check_seeds(target, fn, accepted, mutations);
    std::cout << target << ": " << files.size() << " regression inputs replayed, " << accepted
              << " seeds checked, " << mutations << " unsealed mutations checked, " << failures << " failures\n";
    return failures ? 1 : 0;
  } catch (const std::exception& e) {
    std::cerr << target << ": escaped exception (a bug): " << e.what() << "\n";
    return 1;
  }
}
