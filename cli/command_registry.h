// The kvstream CLI's command registry. Each cli/cmd_*.cpp defines one subcommand and registers it
// at static-initialisation time with KVSTREAM_COMMAND; main() builds the CLI11 app from the registry.
//
// Contract: `setup` adds the subcommand's options to `sub` and returns the action to run when the
// subcommand is chosen; the action returns the process exit code. Commands hold no logic of their
// own: they parse options, call the layers, and print.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

namespace kvstream::cli {

using Action = std::function<int()>;
using Setup = std::function<Action(CLI::App& sub)>;

struct CommandSpec {
  std::string name;
  std::string description;
  Setup setup;
};

std::vector<CommandSpec>& command_registry();

struct CommandRegistrar {
  CommandRegistrar(std::string name, std::string description, Setup setup) {
    command_registry().push_back({std::move(name), std::move(description), std::move(setup)});
  }
};

}  // namespace kvstream::cli

#define KVSTREAM_CONCAT_INNER(a, b) a##b
#define KVSTREAM_CONCAT(a, b) KVSTREAM_CONCAT_INNER(a, b)
// KVSTREAM_COMMAND("name", "description", [](CLI::App& sub) -> kvstream::cli::Action { ... });
#define KVSTREAM_COMMAND(name, description, setup)                                      \
  static ::kvstream::cli::CommandRegistrar KVSTREAM_CONCAT(kvstream_command_, __LINE__)( \
      name, description, setup)
