// fuzz_seeds: writes the generated seed corpus of each target (seeds.h) to OUTDIR/TARGET/.
//
//   fuzz_seeds OUTDIR TARGET...
#include <filesystem>
#include <fstream>
#include <iostream>

#include "fuzz/seeds.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: fuzz_seeds OUTDIR TARGET...\n";
    return 2;
  }
  namespace fs = std::filesystem;
  try {
    for (int i = 2; i < argc; ++i) {
      const auto seeds = kvstream::fuzz::make_seeds(argv[i]);
      if (seeds.empty()) throw std::runtime_error(std::string("no seeds for target ") + argv[i]);
      const fs::path dir = fs::path(argv[1]) / argv[i];
      fs::create_directories(dir);
      for (const auto& s : seeds) {
        std::ofstream f(dir / s.name, std::ios::binary);
        f.write(reinterpret_cast<const char*>(s.bytes.data()), std::streamsize(s.bytes.size()));
        if (!f) throw std::runtime_error("cannot write " + (dir / s.name).string());
      }
      std::cout << argv[i] << ": " << seeds.size() << " seeds in " << dir.string() << "\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "fuzz_seeds: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
