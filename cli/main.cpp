// kvstream: the command-line entry point. Builds the CLI11 app from the registered commands.
#include <algorithm>
#include <exception>
#include <filesystem>
#include <iostream>
#include <map>

#include "cli/command_registry.h"
#include "cli/exit_code.h"
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

// What to do next, for the failures a new user meets first: a path that does not exist (or is a
// directory), and a file of the wrong kind. Chosen by the error's code where the library gives one,
// else by the wording the layers use ("cannot open <what> <path>: ...", "<path>: invalid ...").
std::string hint_for(const std::exception& e, const std::string& command) {
  const std::string what = e.what();
  const auto* err = dynamic_cast<const kvstream::Error*>(&e);
  const auto has = [&](const char* s) { return what.find(s) != std::string::npos; };
  if ((err && err->code() == kvstream::ErrorCode::kNotFound) || what.rfind("cannot open", 0) == 0) {
    std::error_code ec;
    return "relative paths start at the current directory (" + std::filesystem::current_path(ec).string() +
           "); the bundled model, tokenizer, traces and text are in the repository's data/ (data/README.md)";
  }
  if ((err && err->code() == kvstream::ErrorCode::kCorrupt) || has(": invalid ") || has("bad magic") || has("CRC32C"))
    return "is it the kind of file the option expects? `kvstream " + command + " --help` says what each option takes";
  return "";
}

std::string command_name(const CLI::App* sub) {
  std::string name = sub->get_name();
  for (const CLI::App* p = sub->get_parent(); p && p->get_parent(); p = p->get_parent()) name = p->get_name() + " " + name;
  return name;
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
    return app.exit(e) == 0 ? 0 : kExitUsage;  // --help exits 0
  }
  for (auto& [sub, action] : actions) {
    if (!sub->parsed()) continue;
    try {
      return action();
    } catch (const std::exception& e) {
      const auto c = classify(e);  // the exit code of the error's class (cli/exit_code.h)
      std::cerr << "kvstream: error (" << c.label << "): " << e.what() << "\n";
      if (const std::string hint = hint_for(e, command_name(sub)); !hint.empty()) std::cerr << "kvstream: hint: " << hint << "\n";
      return c.exit_code;
    }
  }
  return 0;
}
