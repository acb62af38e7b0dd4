// kvstream: the command-line entry point. Builds the CLI11 app from the registered commands.
#include <algorithm>
#include <exception>
#include <iostream>
#include <map>

#include "cli/command_registry.h"
#include "cli/exit_code.h"

namespace kvstream::cli {
std::vector<CommandSpec>& command_registry() {
  static std::vector<CommandSpec> commands;
  return commands;
}
}  // namespace kvstream::cli

int main(int argc, char** argv) {
  using namespace kvstream::cli;
  CLI::App app{"kvstream: encode, store and stream LLM KV caches over real networks"};
  app.require_subcommand(1);
  auto commands = command_registry();
  std::sort(commands.begin(), commands.end(),
            [](const CommandSpec& a, const CommandSpec& b) { return a.name < b.name; });
  // Commands named "group sub" (e.g. "bench codec") become nested subcommands.
  std::map<std::string, CLI::App*> groups;
  std::vector<std::pair<CLI::App*, Action>> actions;
  for (auto& spec : commands) {
    CLI::App* parent = &app;
    std::string leaf = spec.name;
    if (auto space = spec.name.find(' '); space != std::string::npos) {
      const std::string group = spec.name.substr(0, space);
      leaf = spec.name.substr(space + 1);
      auto& g = groups[group];
      if (!g) {
        g = app.add_subcommand(group, group + " commands");
        g->require_subcommand(1);
      }
      parent = g;
    }
    CLI::App* sub = parent->add_subcommand(leaf, spec.description);
    actions.emplace_back(sub, spec.setup(*sub));
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kExitUsage;  // --help exits 0
  }
  try {
    for (auto& [sub, action] : actions)
      if (sub->parsed()) return action();
  } catch (const std::exception& e) {
    const auto c = classify(e);  // the exit code of the error's class (cli/exit_code.h)
    std::cerr << "kvstream: error (" << c.label << "): " << e.what() << "\n";
    return c.exit_code;
  }
  return 0;
}
