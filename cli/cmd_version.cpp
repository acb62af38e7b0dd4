// `kvstream version`: the same text as `kvstream --version` (cli/version_text.h).
#include <iostream>

#include "cli/command_registry.h"
#include "cli/version_text.h"

KVSTREAM_COMMAND("version", "Print the kvstream version and how this binary was built (as --version)", [](CLI::App&) {
  return kvstream::cli::Action([] {
    std::cout << kvstream::cli::version_text() << "\n";
    return 0;
  });
});
