// `kvstream send` as a background process for the CLI tests: serving the stream fixture's root with
// its keys file (authentication on), --quiet, exiting by itself after 60 s at the latest (or
// SIGTERM from the destructor). port and pid once it listens.
#pragma once
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "tests/cli/shell.h"
#include "tests/streamer/fixture.h"
#include "tests/test_data.h"

namespace kvstream::testing {

inline std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct SendProcess {
  explicit SendProcess(const std::string& extra, int duration_s = 60) {
    log = (std::filesystem::temp_directory_path() /
           ("kvstream-send-cli-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++) + ".log"))
              .string();
    std::filesystem::remove(log);
    const auto& fx = StreamFixture::get();
    const auto [code, out] = shell(quote(kvstream_bin()) + " send --listen 127.0.0.1:0 --dir " + quote(fx.root) +
                                   " --keys " + quote(fx.keys_file) + " --quiet --duration-s " +
                                   std::to_string(duration_s) + " " + extra + " > " + quote(log) + " 2>&1 & echo $!");
    REQUIRE(code == 0);
    pid = std::stoi(out);
    for (int i = 0; i < 300 && port.empty(); ++i) {  // up to 30 s
      const std::string s = slurp(log);
      const auto at = s.find("serving ");
      const auto nl = s.find('\n', at);
      if (at != std::string::npos && nl != std::string::npos) {
        const auto colon = s.rfind(':', nl);
        port = s.substr(colon + 1, nl - colon - 1);
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
    REQUIRE_FALSE(port.empty());
  }
  ~SendProcess() {
    if (pid > 0) ::kill(pid, SIGTERM);
    std::error_code ec;
    std::filesystem::remove(log, ec);
  }
  static int& counter() {
    static int n = 0;
    return n;
  }
  int pid = -1;
  std::string port, log;
};

}  // namespace kvstream::testing
