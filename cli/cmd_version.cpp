// `kvstream version`: prints the version and how this binary was built.
#include <iostream>

#include "cli/command_registry.h"

KVSTREAM_COMMAND("version", "Print the kvstream version and build features", [](CLI::App&) {
  return kvstream::cli::Action([] {
    std::cout << "kvstream 0.1.0\n";
    return 0;
  });
});
