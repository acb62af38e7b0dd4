// kvstream: the command-line entry point. Builds the CLI11 app from the registered commands.
#include <algorithm>
#include <exception>
#include <iostream>
#include <map>

#include "cli/command_registry.h"
#include "cli/version_text.h"

namespace kvstream::cli {
std::vector<CommandSpec>& command_registry() {
  static std::vector<CommandSpec> commands;
  return commands;
}
}  // namespace kvstream::cli

namespace {
// A required option has no default, and an empty list shows as "[]": show neither in --help (the
// option's description says what happens when a list is not given).
void tidy_shown_defaults(CLI::App& sub) {
  for (CLI::Option* opt : sub.get_options())
    if (opt->get_required() || opt->get_default_str() == "[]") opt->default_str("");
}
}  // namespace

int main(int argc, char** argv) {
  using namespace kvstream::cli;
  CLI::App app{"kvstream: encode, store and stream LLM KV caches over real networks"};
  app.require_subcommand(1);
  // Every option of every subcommand shows its default in --help, including options added later:
  // subcommands copy these defaults when they are created, so this comes before any of them.
  app.option_defaults()->always_capture_default();
  app.set_version_flag("--version", version_text(), "Print the kvstream version and how it was built, then exit");
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
    tidy_shown_defaults(*sub);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& [sub, action] : actions)
      if (sub->parsed()) return action();
  } catch (const std::exception& e) {
    std::cerr << "kvstream: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
